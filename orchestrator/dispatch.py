"""Dispatch: sends the ledger's due messages through channel adapters, never twice.

1. **claim**: one transaction turns up to N due rows (``planned``, or ``deferred`` with
   ``send_at <= now``) into ``sending`` with ``attempts + 1``. PostgreSQL takes them with
   ``FOR UPDATE SKIP LOCKED`` so several workers share the queue; on SQLite the engine's
   ``BEGIN IMMEDIATE`` serialises claims. The claim is committed BEFORE any provider call: a
   crash after it leaves ``sending`` rows, which ``reconcile_stuck`` flags instead of re-sending.
2. **compose**: customers, consent and suppressions are loaded in bulk; each message is rendered
   for its channel, tone and locale. A message that cannot go out (past its deadline, no address,
   opted out, suppressed address, render error) is settled here without a provider call.
3. **send**: per channel in batches of ``adapter.limits.max_batch``; concurrency inside a batch is
   the adapter's job.
4. **record**: one transaction per batch with an executemany UPDATE. Provider verdicts that concern
   the customer (opted out, invalid address) become consent and suppression records in it.

Policy stays out: a failed message is reported (``on_permanent``) so the caller may route it to
another channel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from channels.base import (
    ChannelAdapter,
    ConfigurationError,
    OutboundMessage,
    PermanentReason,
    SendResult,
)
from orchestrator.consent import (
    consent_allows,
    current_consent,
    record_consent,
    suppress_address,
    suppressed_addresses,
)
from orchestrator.db import get_engine, is_sqlite, session_scope
from orchestrator.links import unsubscribe_url
from orchestrator.models import ContactPreference, Customer, Message, MessageStatus, address_for, utcnow
from orchestrator.outcomes import (
    DispatchReport,
    Failure,
    LedgerChange,
    RetryPolicy,
    change_for_result,
    retry_later,
)
from orchestrator.policy.config import load_policy
from orchestrator.privacy import redact_text

log = logging.getLogger(__name__)

MESSAGE = Message.__table__
CUSTOMER = Customer.__table__
DEFAULT_CLAIM_SIZE = 1000
DEFAULT_LEASE = timedelta(minutes=10)
# Outcomes that end a message's journey without a send: their reason joins the row's reason codes.
TERMINAL = (MessageStatus.failed, MessageStatus.suppressed, MessageStatus.reconcile)

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
) -> DispatchReport:
    """Sends up to ``limit`` due messages (optionally only those matching the filters).

    ``now`` fixes the clock (tests, replays); by default the real clock is read as work proceeds.
    ``adapters`` maps channel -> adapter (the caller keeps ownership); channels missing from it
    use the configured adapter from the registry, closed again at the end. ``on_progress`` gets
    the report after every batch; ``on_permanent`` gets every message that ended failed or
    suppressed once all claimed work is recorded (so a policy can create a fallback row).
    """
    if limit < 0 or claim_size < 1:
        raise ValueError("limit must be >= 0 and claim_size >= 1")
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    retry = retry or RetryPolicy()
    report = DispatchReport()
    pool = _AdapterPool(adapters)
    try:
        remaining = limit
        while remaining > 0:
            wanted = min(claim_size, remaining)
            claimed = claim_due(
                now=clock(), limit=wanted, channels=channels, campaign_id=campaign_id,
                incident_id=incident_id, message_ids=message_ids, url=url,
            )
            if not claimed:
                break
            remaining -= len(claimed)
            run = _Run(claimed, pool, report, clock, retry, on_progress, url)
            try:
                run.execute()
            except BaseException:
                run.release_unsent()
                raise
            if len(claimed) < wanted:
                break
    finally:
        pool.close()
    if report.processed:
        log.info(
            "dispatch: %d sent, %d deferred, %d failed, %d suppressed, %d to reconcile",
            *(report.total(o) for o in ("sent", "deferred", "failed", "suppressed", "reconcile")),
        )
    if on_permanent is not None and report.failures:
        on_permanent(list(report.failures))
    return report


def claim_due(
    *,
    now: datetime,
    limit: int,
    channels: Iterable[str] | None = None,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    message_ids: Iterable[int] | None = None,
    url: str | None = None,
) -> list[Message]:
    """Atomically moves up to ``limit`` due messages to ``sending`` (committed) and returns them."""
    conditions = _due(now, channels, campaign_id, incident_id, message_ids)
    pick = (
        select(MESSAGE.c.id)
        .where(*conditions)
        .order_by(MESSAGE.c.priority.desc(), MESSAGE.c.send_at, MESSAGE.c.id)
        .limit(limit)
    )
    if not is_sqlite(get_engine(url)):
        pick = pick.with_for_update(skip_locked=True)  # concurrent workers take disjoint rows
    claim = (
        update(MESSAGE)
        .where(MESSAGE.c.id.in_(pick.scalar_subquery()))
        .values(status=MessageStatus.sending, attempts=MESSAGE.c.attempts + 1, updated_at=now)
        .returning(MESSAGE.c.id)
    )
    with session_scope(url) as session:
        ids = list(session.execute(claim).scalars())
        if not ids:
            return []
        # Plain rows (attribute access like the model): ORM objects cost twice as much to load.
        return list(session.execute(select(MESSAGE).where(MESSAGE.c.id.in_(ids)).order_by(MESSAGE.c.id)))


def count_due(
    *,
    now: datetime | None = None,
    channels: Iterable[str] | None = None,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    url: str | None = None,
) -> int:
    """How many messages are due now (for progress reporting; claiming decides what is sent)."""
    query = select(func.count()).select_from(MESSAGE).where(
        *_due(now or utcnow(), channels, campaign_id, incident_id, None)
    )
    with session_scope(url) as session:
        return int(session.execute(query).scalar_one())


def _due(
    now: datetime,
    channels: Iterable[str] | None,
    campaign_id: int | None,
    incident_id: int | None,
    message_ids: Iterable[int] | None,
) -> list[Any]:
    """Planned, or deferred and due, plus the caller's filters."""
    conditions: list[Any] = [or_(
        MESSAGE.c.status == MessageStatus.planned,
        and_(MESSAGE.c.status == MessageStatus.deferred, MESSAGE.c.send_at <= now),
    )]
    if channels is not None:
        conditions.append(MESSAGE.c.channel.in_(list(channels)))
    if campaign_id is not None:
        conditions.append(MESSAGE.c.campaign_id == campaign_id)
    if incident_id is not None:
        conditions.append(MESSAGE.c.incident_id == incident_id)
    if message_ids is not None:
        conditions.append(MESSAGE.c.id.in_(list(message_ids)))
    return conditions


def reconcile_stuck(*, older_than: timedelta = DEFAULT_LEASE, now: datetime | None = None,
                    url: str | None = None) -> list[int]:
    """Flags messages left in ``sending`` longer than ``older_than`` (a crash between claim and record).

    They move to ``reconcile`` and are never re-sent blind: the provider may have accepted them.
    An operator (or a provider lookup) settles them. Returns their ids.
    """
    now = now or utcnow()
    cutoff = now - older_than
    stale = select(MESSAGE.c.id, MESSAGE.c.reason_codes, MESSAGE.c.updated_at).where(
        MESSAGE.c.status == MessageStatus.sending, MESSAGE.c.updated_at < cutoff
    )
    with session_scope(url) as session:
        if not is_sqlite(session.get_bind()):
            stale = stale.with_for_update(skip_locked=True)  # a live dispatcher may be recording them
        rows = session.execute(stale.order_by(MESSAGE.c.id)).all()
        if rows:
            _update_ledger(
                session,
                [
                    _params(
                        row.id, MessageStatus.reconcile, now,
                        reason_codes=[*row.reason_codes, "reconcile:lease_expired"],
                        last_error="reconcile:lease_expired: in sending since "
                        f"{row.updated_at:%Y-%m-%d %H:%M:%S} UTC (lease {older_than}); "
                        "check the provider before sending again",
                    )
                    for row in rows
                ],
            )
    ids = [row.id for row in rows]
    if ids:
        log.warning("reconcile: %d message(s) stuck in sending need a check: %s", len(ids), ids[:50])
    return ids


class SentLookup(Protocol):
    """What an adapter implements when its provider can be asked about a message by our id."""

    def find_sent(self, message_ids: list[int]) -> dict[int, str | None]:
        """For each message the provider can tell about: its provider message id when it has the
        message, ``None`` when it certainly never received it. Unknown ids are left out."""
        ...


def resolve_reconcile(lookups: Mapping[str, SentLookup], *, now: datetime | None = None,
                      url: str | None = None, limit: int = 5000) -> dict[str, int]:
    """Settles ``reconcile`` messages on channels whose provider can be asked (``lookups`` by channel).

    Found at the provider -> ``sent``; certainly not received -> ``deferred`` to now (safe to send
    again); no answer -> left for an operator. Returns how many went each way.
    """
    now = now or utcnow()
    with session_scope(url) as session:
        rows = session.execute(
            select(MESSAGE.c.id, MESSAGE.c.channel, MESSAGE.c.send_at).where(
                MESSAGE.c.status == MessageStatus.reconcile, MESSAGE.c.channel.in_(list(lookups))
            ).order_by(MESSAGE.c.id).limit(limit)
        ).all()
    by_channel: dict[str, list[Any]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    counts = {"sent": 0, "requeued": 0, "unknown": 0}
    updates: list[dict[str, Any]] = []
    for channel, pending in by_channel.items():
        answers = lookups[channel].find_sent([row.id for row in pending])
        for row in pending:
            if row.id not in answers:
                counts["unknown"] += 1
                continue
            found = answers[row.id]
            counts["sent" if found else "requeued"] += 1
            verdict = "the provider has it" if found else "the provider never received it"
            updates.append(_params(
                row.id, MessageStatus.sent if found else MessageStatus.deferred, now,
                send_at=row.send_at if found else now, provider_message_id=found,
                sent_at=now if found else None, last_error=f"reconciled: {verdict}",
            ))
    with session_scope(url) as session:
        _update_ledger(session, updates)
    return counts


class OperatorVerdict:
    """An operator's answer after checking the provider's console: a ``SentLookup`` for chosen ids."""

    def __init__(self, message_ids: list[int], *, sent: bool, provider_message_id: str | None = None):
        self._answer = {mid: (provider_message_id or "confirmed-by-operator") if sent else None
                        for mid in message_ids}

    def find_sent(self, message_ids: list[int]) -> dict[int, str | None]:
        return {mid: self._answer[mid] for mid in message_ids if mid in self._answer}


def settle_reconcile(message_ids: list[int], *, sent: bool, provider_message_id: str | None = None,
                     now: datetime | None = None, url: str | None = None) -> dict[str, int]:
    """An operator settles flagged messages: ``sent`` marks them sent, otherwise they are queued
    to go out again (the operator checked that the provider never received them)."""
    with session_scope(url) as session:
        channels = session.scalars(
            select(MESSAGE.c.channel).where(MESSAGE.c.id.in_(message_ids),
                                            MESSAGE.c.status == MessageStatus.reconcile).distinct()
        ).all()
    verdict = OperatorVerdict(message_ids, sent=sent, provider_message_id=provider_message_id)
    counts = resolve_reconcile(dict.fromkeys(channels, verdict), now=now, url=url)
    return {"sent": counts["sent"], "requeued": counts["requeued"],
            "not_flagged": len(set(message_ids)) - counts["sent"] - counts["requeued"]}


# --- internals -------------------------------------------------------------------------------


class _AdapterPool:
    """Adapters by channel: the caller's first, else the registry's (created once, closed at the end)."""

    def __init__(self, given: Mapping[str, ChannelAdapter] | None) -> None:
        self._given = dict(given or {})
        self._owned: dict[str, ChannelAdapter] = {}

    def get(self, channel: str) -> ChannelAdapter:
        if channel in self._given:
            return self._given[channel]
        if channel not in self._owned:
            from channels.registry import adapter_for  # imported late: it loads provider SDKs

            self._owned[channel] = adapter_for(channel)
        return self._owned[channel]

    def close(self) -> None:
        for adapter in self._owned.values():
            try:
                adapter.close()
            except Exception:  # closing must not hide the run's outcome
                log.warning("closing the %s adapter failed", adapter.channel, exc_info=True)


@dataclass
class _Ready:
    message: Message
    outbound: OutboundMessage
    address: str


class _Run:
    """Composes, sends and records one claimed set of messages."""

    def __init__(
        self,
        claimed: list[Message],
        pool: _AdapterPool,
        report: DispatchReport,
        clock: Callable[[], datetime],
        retry: RetryPolicy,
        on_progress: ProgressCallback | None,
        url: str | None,
    ) -> None:
        self.messages = {m.id: m for m in claimed if m.id is not None}
        self.pool, self.report, self.clock, self.retry = pool, report, clock, retry
        self.on_progress, self.url = on_progress, url
        self.handed: set[int] = set()  # given to an adapter: only a provider answer may settle them
        self.recorded: set[int] = set()
        # A customer who asked for no contact after the decision still gets the required topics.
        self.required_topics = {name for name, topic in load_policy().topics.items() if topic.required}

    def release_unsent(self) -> None:
        """After an error: messages that never reached an adapter go back to the queue at once
        (the rest stay ``sending`` until reconciled). Best effort: the database may be the problem."""
        done = self.handed | self.recorded
        unsent = [m for mid, m in self.messages.items() if mid not in done]
        try:
            self._release("", unsent, "dispatch interrupted before the provider call", configuration=False)
        except Exception:
            log.warning("could not release %d unsent message(s); they will be reconciled", len(unsent),
                        exc_info=True)

    def execute(self) -> None:
        ready, settled = self._compose()
        if settled:
            self._record(settled, {})
        by_channel: dict[str, list[_Ready]] = {}
        for item in ready:
            by_channel.setdefault(item.message.channel, []).append(item)
        for channel, items in by_channel.items():
            self._send_channel(channel, items)

    # compose --------------------------------------------------------------------------------

    def _compose(self) -> tuple[list[_Ready], list[LedgerChange]]:
        customer_ids = sorted({m.customer_id for m in self.messages.values()})
        with session_scope(self.url) as session:
            found = session.execute(select(CUSTOMER).where(CUSTOMER.c.id.in_(customer_ids)))
            customers = {c.id: c for c in found}
            consent = current_consent(session, customer_ids)
            do_not_contact = set(session.scalars(select(ContactPreference.customer_id).where(
                ContactPreference.customer_id.in_(customer_ids), ContactPreference.do_not_contact.is_(True))))
            address_of: dict[int, str | None] = {}
            by_channel: dict[str, set[str]] = {}
            for mid, m in self.messages.items():
                customer = customers.get(m.customer_id)
                address = address_of[mid] = address_for(m.channel, customer) if customer else None
                if address:
                    by_channel.setdefault(m.channel, set()).add(address)
            blocked = {ch: suppressed_addresses(session, ch, addrs) for ch, addrs in by_channel.items()}
        ready: list[_Ready] = []
        settled: list[LedgerChange] = []
        renderable: list[tuple[Message, Customer, str]] = []
        now = self.clock()
        for mid, m in self.messages.items():
            customer = customers.get(m.customer_id)
            address = address_of[mid]
            outcome: LedgerChange
            if m.deadline is not None and m.deadline < now:
                outcome = _settle(m, MessageStatus.failed, "expired:deadline",
                                  f"deadline {m.deadline:%Y-%m-%d %H:%M} UTC passed")
            elif customer is None or not address:
                outcome = _settle(m, MessageStatus.failed, f"no_address:{m.channel}", "no address on file")
            elif not consent_allows(consent, customer.id, m.channel, m.topic):  # type: ignore[arg-type]
                outcome = _settle(m, MessageStatus.suppressed, "consent:opted_out",
                                  f"opted out of {m.topic} on {m.channel} since the decision")
            elif customer.id in do_not_contact and m.topic not in self.required_topics:
                outcome = _settle(m, MessageStatus.suppressed, "do_not_contact",
                                  "asked not to be contacted since the decision")
            elif address in blocked.get(m.channel, set()):
                outcome = _settle(m, MessageStatus.suppressed, f"suppressed:{m.channel}",
                                  "address is on the suppression list")
            else:
                renderable.append((m, customer, address))  # type: ignore[arg-type]
                continue
            settled.append(outcome)
        for result in _render_all(renderable, now):
            (ready if isinstance(result, _Ready) else settled).append(result)
        return ready, settled

    # send -----------------------------------------------------------------------------------

    def _send_channel(self, channel: str, items: list[_Ready]) -> None:
        try:
            adapter = self.pool.get(channel)
            size = max(1, adapter.limits.max_batch)
        except ConfigurationError as exc:
            self._release(channel, [i.message for i in items], f"configuration: {exc}")
            return
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            self.handed.update(i.message.id for i in batch)  # type: ignore[misc]
            try:
                results = adapter.send([item.outbound for item in batch])
            except ConfigurationError as exc:  # raised before anything is sent
                self._release(channel, [i.message for i in items[start:]], f"configuration: {exc}")
                return
            except Exception as exc:  # the adapter broke mid-call: the provider may have the messages
                log.error("the %s adapter raised %s; %d message(s) need reconciling", channel,
                          type(exc).__name__, len(batch))
                why = redact_text(f"adapter raised {type(exc).__name__}: {exc}")
                self._record([_settle(i.message, MessageStatus.reconcile, "reconcile:adapter_error", why,
                                      attempted=True) for i in batch], {})
                self._release(channel, [i.message for i in items[start + size :]], why, configuration=False)
                return
            self._record(self._changes_for(batch, results), {i.message.id: i for i in batch})  # type: ignore[misc]

    def _changes_for(self, batch: list[_Ready], results: list[SendResult]) -> list[LedgerChange]:
        by_id = {r.message_id: r for r in results}
        now = self.clock()
        changes = []
        for item in batch:
            m = item.message
            result = by_id.get(m.id)  # type: ignore[arg-type]
            if result is None:
                changes.append(_settle(m, MessageStatus.reconcile, "reconcile:no_result",
                                       "the adapter returned no result for this message", attempted=True))
                continue
            changes.append(change_for_result(result, attempts=m.attempts, deadline=m.deadline, now=now,
                                             retry=self.retry))
        return changes

    def _release(self, channel: str, unsent: list[Message], why: str, *, configuration: bool = True) -> None:
        """Messages that never reached the provider: back to ``deferred``, the attempt given back."""
        if not unsent:
            return
        if configuration:
            self.report.configuration_errors[channel] = redact_text(why)
        now = self.clock()
        changes = []
        for m in unsent:
            change = retry_later(m.id, why, attempts=m.attempts - 1, deadline=m.deadline,  # type: ignore[arg-type]
                                 now=now, retry=self.retry, reason="not_sent")
            change.attempts_delta = -1
            changes.append(change)
        self._record(changes, {})

    # record ---------------------------------------------------------------------------------

    def _record(self, changes: list[LedgerChange], sent: Mapping[int, _Ready]) -> None:
        """One transaction: the ledger updates (executemany) and the customer-level side effects."""
        now = self.clock()
        params = []
        for change in changes:
            m = self.messages[change.message_id]
            terminal = change.status in TERMINAL and change.reason
            params.append(_params(
                m.id, change.status, now,  # type: ignore[arg-type]
                send_at=change.send_at or m.send_at,
                provider=change.provider or m.provider,
                provider_message_id=change.provider_message_id or m.provider_message_id,
                sent_at=now if change.status is MessageStatus.sent else m.sent_at,
                last_error=_error_text(change) or m.last_error,
                reason_codes=[*m.reason_codes, change.reason] if terminal else m.reason_codes,
                attempts=m.attempts + change.attempts_delta,
            ))
        with session_scope(self.url) as session:
            _update_ledger(session, params)
            for change in changes:
                item = sent.get(change.message_id)
                if item is not None and change.reason in _CUSTOMER_VERDICTS:
                    _apply_verdict(session, item, change)
        self.recorded.update(change.message_id for change in changes)
        for change in changes:
            m = self.messages[change.message_id]
            self.report.add(m.channel, change.status.value)
            if change.status in (MessageStatus.failed, MessageStatus.suppressed):
                self.report.failures.append(Failure(
                    m.id, m.customer_id, m.channel, m.topic, change.status.value,  # type: ignore[arg-type]
                    change.reason or "", change.detail,
                ))
            elif change.status is MessageStatus.reconcile:
                self.report.reconcile.append(m.id)  # type: ignore[arg-type]
        if self.on_progress is not None:
            self.on_progress(self.report)


_CUSTOMER_VERDICTS = {
    f"permanent:{PermanentReason.unsubscribed.value}",
    f"permanent:{PermanentReason.invalid_address.value}",
}


def _apply_verdict(session: Session, item: _Ready, change: LedgerChange) -> None:
    """The provider says the customer opted out, or the address can never work: remember it.

    Each write sits in a savepoint: a concurrent worker recording the same address must not undo
    this batch's ledger updates.
    """
    m, source = item.message, f"provider:{change.provider or 'unknown'}"
    try:
        with session.begin_nested():
            if change.reason == f"permanent:{PermanentReason.unsubscribed.value}":
                record_consent(session, m.customer_id, m.channel, "*", "opted_out", source)
            else:
                suppress_address(session, m.channel, item.address, PermanentReason.invalid_address.value,
                                 source)
    except IntegrityError:
        log.info("%s verdict for message %s was already recorded by another worker", change.reason, m.id)


def _error_text(change: LedgerChange) -> str | None:
    if not change.reason:
        return None
    return f"{change.reason}: {change.detail}" if change.detail else change.reason


def _settle(m: Message, status: MessageStatus, reason: str, detail: str, *, attempted: bool = False
            ) -> LedgerChange:
    """A message decided here; unless the provider was called, its claimed attempt is given back."""
    return LedgerChange(m.id, status, reason=reason, detail=redact_text(detail),  # type: ignore[arg-type]
                        attempts_delta=0 if attempted else -1)


def _render_all(pending: list[tuple[Message, Customer, str]], now: datetime) -> list[_Ready | LedgerChange]:
    """The messages as their customers will see them, merged where the templates allow (see
    ``templating.merge``); a template problem fails the message (never a hole sent)."""
    from orchestrator.templating import TemplateProblem, build_context, message_info
    from orchestrator.templating.context import brand
    from orchestrator.templating.merge import Item, render_many

    results: list[_Ready | LedgerChange] = []
    renderable, items = [], []
    brand_info = brand()
    for m, customer, address in pending:
        try:
            context = build_context(customer, dict(m.data or {}), topic=m.topic, message_id=m.id,
                                    brand_info=brand_info)
        except TemplateProblem as exc:  # e.g. a customer_since that is not a date
            results.append(_settle(m, MessageStatus.failed, "render_error", str(exc)))
            continue
        renderable.append((m, customer, address))
        items.append(Item(m.template, m.tone, m.channel, m.locale or customer.locale or "en",
                          "dm" if m.channel == "social" else None, context))
    outcomes = render_many(items)
    for (m, customer, address), item, outcome in zip(renderable, items, outcomes, strict=True):
        if outcome.rendered is None:
            results.append(_settle(m, MessageStatus.failed, "render_error", str(outcome.problem)))
            continue
        rendered = outcome.rendered
        marketing = bool(message_info(m.template).marketing)
        due_in = int((m.deadline - now).total_seconds()) if m.deadline is not None else None
        unsubscribe = None
        if marketing:  # an email's context has already signed this link
            links = item.context.get("links") or {}
            unsubscribe = links.get("unsubscribe_url") if m.channel == "email" else None
            unsubscribe = unsubscribe or unsubscribe_url(customer.id, m.topic, m.channel,  # type: ignore[arg-type]
                                                         message_id=m.id)
        outbound = OutboundMessage(
            message_id=m.id,  # type: ignore[arg-type]
            channel=m.channel,
            to=str(customer.id) if m.channel == "phone" else address,
            body=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            topic=m.topic,
            marketing=marketing,
            unsubscribe_url=unsubscribe,
            customer_id=customer.id,
            priority=m.priority,
            due_in_seconds=due_in,
            categories=[m.topic, m.template],
            meta={"campaign_id": m.campaign_id, "incident_id": m.incident_id},
            merge=outcome.merge,
        )
        results.append(_Ready(m, outbound, address))
    return results


def _update_ledger(session: Session, rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE; every row carries the same columns (``b_<column>`` plus ``b_id``).

    Only rows still in flight change (``reconcile`` included: a late but real provider answer
    settles a message the lease had given up on).
    """
    if not rows:
        return
    columns = [key[2:] for key in rows[0] if key != "b_id"]
    statement = (
        update(MESSAGE)
        .where(MESSAGE.c.id == bindparam("b_id"),
               or_(MESSAGE.c.status == MessageStatus.sending, MESSAGE.c.status == MessageStatus.reconcile))
        .values({col: bindparam(f"b_{col}") for col in columns})
    )
    session.connection().execute(statement, rows)


def _params(message_id: int, status: MessageStatus, now: datetime, **values: Any) -> dict[str, Any]:
    return {"b_id": message_id, "b_status": status.value, "b_updated_at": now,
            **{f"b_{col}": value for col, value in values.items()}}
