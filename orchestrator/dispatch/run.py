"""Dispatch: sends the ledger's due messages through channel adapters, never twice.

Each round claims a set of due messages (``ledger.queue``), then takes it through three steps,
each a module of its own: **compose** (``dispatch.compose``), **send** (``dispatch.send``) and
**record** (``dispatch.record``). Policy stays out: a failed message is reported
(``on_permanent``) so the caller may route it to another channel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
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
from orchestrator.pacing.pacer import BULK_MAX_WAIT, URGENT_MAX_WAIT, Pacer
from orchestrator.policy.config import load_policy
from orchestrator.policy.quiet_hours import QuietHours
from orchestrator.privacy import redact_text

log = logging.getLogger(__name__)

DEFAULT_CLAIM_SIZE = 1000
DEFAULT_PACE_PATIENCE = 300.0  # seconds a dispatch keeps sending messages that wait for their rate
PACE_AHEAD = 1.0  # seconds before its expected time a message that waits for its rate is claimed
MAX_LANES = 8  # channels of one batch sent at once (more wait for a lane thread)

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
    pace_wait: float | None = None,
    waiting: Mapping[int, tuple[str, datetime]] | None = None,
) -> DispatchReport:
    """Sends up to ``limit`` due messages (optionally only those matching the filters).

    ``now`` fixes the clock (tests, replays); by default the real clock is read as work proceeds.
    ``adapters`` maps channel -> adapter (the caller keeps ownership); channels missing from it
    use the configured adapter from the registry, closed again at the end. ``on_progress`` gets
    the report after every batch; ``on_permanent`` gets every message that ended failed or
    suppressed once all claimed work is recorded (so a policy can create a fallback row).

    Messages that had to wait for their send rate (``pace:<rate>``) are claimed again when their
    time comes, as long as that is within ``pace_patience`` seconds of the start; later ones are
    left deferred for the due-sweeper. ``pace_wait`` caps how long a batch waits in-process for its
    slots (longer waits go to the ledger at once); ``waiting`` takes over messages another dispatch
    left waiting for their rate (id -> channel and expected time; with ``message_ids`` covering them).
    """
    if limit < 0 or claim_size < 1:
        raise ValueError("limit must be >= 0 and claim_size >= 1")
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    retry = retry or RetryPolicy()
    report = DispatchReport(waiting=dict(waiting or {}))
    pool = AdapterPool(adapters)
    pacer = Pacer(load_policy().rates, url=url, bulk_max_wait=min(BULK_MAX_WAIT, pace_wait)
                  if pace_wait is not None else BULK_MAX_WAIT,
                  urgent_max_wait=pace_wait if pace_wait is not None else URGENT_MAX_WAIT)
    started = time.monotonic()
    given = set(message_ids) if message_ids is not None else None
    following = False  # waiting for messages that wait for their rate

    def claim(count: int) -> list[ClaimedMessage]:
        early: list[ClaimedMessage] = []
        if following and report.waiting:
            # Messages waiting for their rate are claimed a little before their time and the pacer
            # waits in-process for their exact slots: one claim, compose and record serve many slots.
            at = clock()
            due_by = at + timedelta(seconds=PACE_AHEAD)
            early = claim_due(now=at, due_by=due_by, limit=count, channels=channels, url=url,
                              message_ids=[i for i in report.waiting if given is None or i in given])
            if len(early) < count:
                # Those due by now that the claim did not return were taken by another worker or
                # ended (cancelled, sent): no longer ours to wait for.
                report.forget_waiting(due_by, kept={m.id for m in early})
        if len(early) >= count:
            return early
        return early + claim_due(now=clock(), limit=count - len(early), channels=channels,
                                 campaign_id=campaign_id, incident_id=incident_id, message_ids=message_ids,
                                 url=url)

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
            wait = max(0.0, (next_at - utcnow()).total_seconds() - PACE_AHEAD)
            if time.monotonic() - started + wait > pace_patience:
                break
            time.sleep(wait)
            following = True
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
        self._creating = threading.Lock()  # the lanes of a batch ask for their adapters at once
        self._lanes: ThreadPoolExecutor | None = None

    def lanes(self) -> ThreadPoolExecutor:
        """Threads that send the channels of a batch side by side. Kept for the whole dispatch, so an
        adapter's client per thread (and its kept-alive connection) serves batch after batch."""
        with self._creating:
            if self._lanes is None:
                self._lanes = ThreadPoolExecutor(MAX_LANES, thread_name_prefix="lane")
            return self._lanes

    def get(self, channel: str) -> ChannelAdapter:
        if channel in self._given:
            return self._given[channel]
        with self._creating:
            return self._owned_adapter(channel)

    def _owned_adapter(self, channel: str) -> ChannelAdapter:
        if channel not in self._owned:
            from channels.registry import adapter_for  # imported late: it loads provider SDKs
            from orchestrator.settings import get_settings

            self._owned[channel] = adapter_for(channel, get_settings())
        return self._owned[channel]

    def close(self) -> None:
        if self._lanes is not None:
            self._lanes.shutdown(wait=True)
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
        # Outcomes being written, or that failed to be written (one entry per lane at most).
        self.unrecorded: list[tuple[list[LedgerChange], list[ReadyMessage]]] = []
        self._recording = threading.RLock()  # channels are sent side by side, recorded one by one
        policy = load_policy()
        # A customer who asked for no contact after the decision still gets the required topics.
        self.required_topics = set(policy.required_topics())
        self.quiet_hours = QuietHours.of(policy)

    def dispatch(self) -> None:
        composed = compose_step.compose(self.messages, self.clock(), self.required_topics, self.url,
                                        self.quiet_hours)
        if composed.settled:
            self.record(composed.settled, [])
        by_channel: dict[str, list[ReadyMessage]] = {}
        for item in composed.ready:
            by_channel.setdefault(item.message.channel, []).append(item)

        def send(channel: str) -> None:
            send_channel(channel, by_channel[channel], adapter_for=self.pool.get, recorder=self,
                         clock=self.clock, retry=self.retry, handed=self.handed, pacer=self.pacer)

        if len(by_channel) < 2:
            for channel in by_channel:
                send(channel)
            return
        # Each channel is a lane of its own: one that waits for its rate (SMS at 10/s) must not hold
        # back another (email), so the channels go side by side; their outcomes are recorded one
        # at a time. The first error is raised once every lane has stopped.
        futures = [self.pool.lanes().submit(send, channel) for channel in by_channel]
        wait(futures)
        for future in futures:
            future.result()

    def release_unsent(self) -> None:
        """After an error: what providers answered is recorded after all if the database is back,
        and messages that never reached an adapter go back to the queue at once (the rest stay
        ``sending`` until reconciled). Best effort: the database may be the problem."""
        for changes, sent in list(self.unrecorded):
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
        carry) are only in memory, so they are kept until written or reported. One lane at a time."""
        with self._recording:
            self._record(changes, sent)

    def _record(self, changes: list[LedgerChange], sent: list[ReadyMessage]) -> None:
        pending = (changes, sent)
        if not any(entry is pending or entry[0] is changes for entry in self.unrecorded):
            self.unrecorded.append(pending)
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
        self.unrecorded = [entry for entry in self.unrecorded if entry[0] is not changes]
        self.recorded.update(change.message_id for change in changes)
        add_to_report(self.report, self.messages, changes)
        if self.on_progress is not None:
            self.on_progress(self.report)
