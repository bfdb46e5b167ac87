"""Dispatch: sends the ledger's due messages through channel adapters, never twice.

Each round claims a set of due messages (``ledger.queue``), then takes it through three steps,
each a module of its own: **compose** (``dispatch.compose``), **send** (``dispatch.send``) and
**record** (``dispatch.record``). Policy stays out: a failed message is reported
(``on_permanent``) so the caller may route it to another channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial

from channels.base import ChannelAdapter
from orchestrator.db import DatabaseUnavailable, brief_cause, retry_while_unavailable
from orchestrator.dispatch import compose as compose_step
from orchestrator.dispatch.compose import ReadyMessage
from orchestrator.dispatch.record import add_to_report, record
from orchestrator.dispatch.report import DispatchReport
from orchestrator.dispatch.send import send_channel
from orchestrator.ledger.changes import Failure, LedgerChange, released
from orchestrator.ledger.queue import ClaimedMessage, claim_due
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.models import MessageStatus, utcnow
from orchestrator.pacing.pacer import Pacer
from orchestrator.policy.config import load_policy
from orchestrator.privacy import redact_text

log = logging.getLogger(__name__)

DEFAULT_CLAIM_SIZE = 1000
DEFAULT_PACE_PATIENCE = 300.0  # seconds a dispatch keeps sending messages that wait for their rate

ProgressCallback = Callable[[DispatchReport], None]
FailureHook = Callable[[list[Failure]], None]


def dispatch_due(
    *,
    now: datetime | None = None,
    limit: int = 5000,
    channels: list[str] | None = None,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    message_ids: list[int] | None = None,
    adapters: Mapping[str, ChannelAdapter] | None = None,
    on_progress: ProgressCallback | None = None,
    on_permanent: FailureHook | None = None,
    retry: RetryPolicy | None = None,
    claim_size: int = DEFAULT_CLAIM_SIZE,
    url: str | None = None,
    pace_patience: float = DEFAULT_PACE_PATIENCE,
) -> DispatchReport:
    """Sends up to ``limit`` due messages (optionally only those matching the filters).

    ``now`` fixes the clock (tests, replays); by default the real clock is read as work proceeds.
    ``adapters`` maps channel -> adapter (the caller keeps ownership); channels missing from it
    use the configured adapter from the registry, closed again at the end. ``on_progress`` gets
    the report after every batch; ``on_permanent`` gets every message that ended failed or
    suppressed once all claimed work is recorded (so a policy can create a fallback row).

    Messages that had to wait for their send rate (``pace:<rate>``) are claimed again when their
    time comes, as long as that is within ``pace_patience`` seconds of the start; later ones are
    left deferred for the due-sweeper.
    """
    if limit < 0 or claim_size < 1:
        raise ValueError("limit must be >= 0 and claim_size >= 1")
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    retry = retry or RetryPolicy()
    report = DispatchReport()
    pool = AdapterPool(adapters)
    pacer = Pacer(load_policy().rates, url=url)
    started = time.monotonic()

    def claim(count: int) -> list[ClaimedMessage]:
        return claim_due(now=clock(), limit=count, channels=channels, campaign_id=campaign_id,
                         incident_id=incident_id, message_ids=message_ids, url=url)

    try:
        remaining = limit
        while True:
            wanted = min(claim_size, remaining + len(report.waiting))  # waiting rows were counted once
            claimed = retry_while_unavailable(partial(claim, wanted), what="claiming due messages"
                                              ) if wanted > 0 else []
            if claimed:
                remaining -= sum(1 for m in claimed if m.id not in report.waiting)
                batch = ClaimedBatch(claimed, pool, report, clock, retry, on_progress, url, pacer)
                try:
                    batch.dispatch()
                except BaseException:
                    batch.release_unsent()
                    raise
                if len(claimed) == wanted:
                    continue
            # Nothing more is due now: wait for the messages that wait for their rate, if soon.
            next_at = report.next_paced()
            if next_at is None or now is not None:
                break
            wait = max(0.0, (next_at - utcnow()).total_seconds())
            if time.monotonic() - started + wait > pace_patience:
                break
            time.sleep(wait)
    finally:
        pool.close()
        report.settle_waiting()
    if report.processed:
        log.info(
            "dispatch: %d sent, %d deferred, %d failed, %d suppressed, %d to reconcile",
            *(report.total(o) for o in ("sent", "deferred", "failed", "suppressed", "reconcile")),
        )
    if on_permanent is not None and report.failures:
        on_permanent(list(report.failures))
    return report


class AdapterPool:
    """Adapters by channel: the caller's first, else the registry's (created once, closed at the end)."""

    def __init__(self, given: Mapping[str, ChannelAdapter] | None) -> None:
        self._given = dict(given or {})
        self._owned: dict[str, ChannelAdapter] = {}

    def get(self, channel: str) -> ChannelAdapter:
        if channel in self._given:
            return self._given[channel]
        if channel not in self._owned:
            from channels.registry import adapter_for  # imported late: it loads provider SDKs
            from orchestrator.settings import get_settings

            self._owned[channel] = adapter_for(channel, get_settings())
        return self._owned[channel]

    def close(self) -> None:
        for adapter in self._owned.values():
            try:
                adapter.close()
            except Exception:  # closing must not hide the run's outcome
                log.warning("closing the %s adapter failed", adapter.channel, exc_info=True)


class ClaimedBatch:
    """One claimed set of messages on its way through compose, send and record."""

    def __init__(
        self,
        claimed: list[ClaimedMessage],
        pool: AdapterPool,
        report: DispatchReport,
        clock: Callable[[], datetime],
        retry: RetryPolicy,
        on_progress: ProgressCallback | None,
        url: str | None,
        pacer: Pacer,
    ) -> None:
        self.messages = {m.id: m for m in claimed}
        self.pacer = pacer
        self.pool, self.report, self.clock, self.retry = pool, report, clock, retry
        self.on_progress, self.url = on_progress, url
        self.handed: set[int] = set()  # given to an adapter: only a provider answer may settle them
        self.recorded: set[int] = set()
        self.unrecorded: tuple[list[LedgerChange], list[ReadyMessage]] | None = None  # being written
        # A customer who asked for no contact after the decision still gets the required topics.
        self.required_topics = set(load_policy().required_topics())

    def dispatch(self) -> None:
        composed = compose_step.compose(self.messages, self.clock(), self.required_topics, self.url)
        if composed.settled:
            self.record(composed.settled, [])
        by_channel: dict[str, list[ReadyMessage]] = {}
        for item in composed.ready:
            by_channel.setdefault(item.message.channel, []).append(item)
        for channel, items in by_channel.items():
            send_channel(channel, items, adapter_for=self.pool.get, recorder=self, clock=self.clock,
                         retry=self.retry, handed=self.handed, pacer=self.pacer)

    def release_unsent(self) -> None:
        """After an error: what providers answered is recorded after all if the database is back,
        and messages that never reached an adapter go back to the queue at once (the rest stay
        ``sending`` until reconciled). Best effort: the database may be the problem."""
        if self.unrecorded:
            changes, sent = self.unrecorded
            try:
                self.record(changes, sent)
            except Exception:
                pass  # already logged with the provider ids, by record()
        done = self.handed | self.recorded
        unsent = [m for mid, m in self.messages.items() if mid not in done]
        try:
            self.release("", unsent, "dispatch interrupted before the provider call", configuration=False)
        except Exception as exc:
            log.warning("could not release %d unsent message(s), they will be reconciled: %s", len(unsent),
                        brief_cause(exc))

    def release(self, channel: str, unsent: list[ClaimedMessage], why: str, *, configuration: bool = True
                ) -> None:
        """Messages that never reached the provider: back to ``deferred``, the attempt given back.
        ``configuration``: the channel's set-up is at fault (reported per channel)."""
        if configuration:
            self.report.configuration_errors[channel] = redact_text(why)
        if not unsent:
            return
        now = self.clock()
        self.record([released(m.id, why, attempts=m.attempts, deadline=m.deadline, now=now, retry=self.retry)
                     for m in unsent], [])

    def record(self, changes: list[LedgerChange], sent: list[ReadyMessage]) -> None:
        """Writes the changes, through database blips: until then they (and the provider ids they
        carry) are only in memory, so they are kept until written or reported."""
        self.unrecorded = (changes, sent)
        try:
            retry_while_unavailable(lambda: record(self.messages, changes, sent, self.clock(), self.url),
                                    what=f"recording {len(changes)} dispatch outcome(s)")
        except DatabaseUnavailable:
            accepted = ", ".join(f"{c.message_id}={c.provider_message_id}" for c in changes
                                 if c.status is MessageStatus.sent)
            log.error("not recorded: %d dispatch outcome(s); they stay in sending until flagged for "
                      "reconciliation. Accepted by the provider (message=provider id, for `orchestrator "
                      "reconcile settle ID --sent --provider-id ...`): %s", len(changes), accepted or "none")
            raise
        self.unrecorded = None
        self.recorded.update(change.message_id for change in changes)
        add_to_report(self.report, self.messages, changes)
        if self.on_progress is not None:
            self.on_progress(self.report)
