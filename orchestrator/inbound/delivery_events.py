"""Provider delivery events onto the ledger, consent and suppressions.

An event moves its ledger row forward, never backwards (``orchestrator.ledger.delivery`` writes
the row), is stored as a ``DeliveryEvent`` row, suppresses a dead address and records an
opt-out. Every effect is idempotent: the event row is inserted first with ``ON CONFLICT DO
NOTHING`` on (provider, provider_event_id), and only a newly inserted event has effects, so a
repeated (or concurrent) delivery changes nothing.

A failure the provider reports after accepting the message (a Twilio status callback with a
WhatsApp 63016 or 63003) that carries a ``Permanent`` reason is that refusal, late: the failed row
gets its ``permanent:<reason>`` code and, in the same transaction, the policy's fallback reserves
the next channel (``orchestrator.policy.fallback``), exactly as for a refusal at send time. The
fallback row's dedupe key makes a second report of the failure find it instead of adding one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from channels.events import MESSAGE_TOPIC, DeliveryStatus, ProviderEvent
from orchestrator.consent import ANY, opt_out, suppress_address
from orchestrator.contact_points import addresses_of, customers_with_address
from orchestrator.ledger.changes import Failure
from orchestrator.ledger.delivery import (
    PROGRESS_RANK,
    DeliveryMove,
    add_failure_reasons,
    advance_delivery_status,
)
from orchestrator.models import Customer, DeliveryEvent, Message, MessageStatus, utcnow
from orchestrator.policy.config import load_policy
from orchestrator.policy.fallback import fallback_in
from orchestrator.privacy import mask_address
from orchestrator.reasons import PERMANENT

log = logging.getLogger(__name__)


def webhook_source(provider: str) -> str:
    return f"webhook:{provider}"


@dataclass
class DeliveryEventReport:
    received: int = 0
    duplicates: int = 0
    status_changes: int = 0
    suppressed: int = 0
    opt_outs: int = 0
    unmatched: int = 0  # events whose message we could not find (kept all the same)
    late_failures: int = 0  # failures after the send that carry a Permanent reason
    fallbacks: int = 0  # next-channel rows reserved for them


def record_new_events(
    session: Session, events: list[ProviderEvent], messages: list[Message | None], received_at: datetime
) -> set[str]:
    """Inserts events not seen before (with the message each belongs to); returns the ids of
    those actually inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "message_id": message.id if message is not None else None,
            "provider": e.provider,
            "provider_event_id": e.event_id,
            "event_type": e.event_type,
            "kind": e.kind.value,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": received_at,
        }
        # One order for every writer: concurrent batches cannot deadlock on the unique index.
        for e, message in sorted(zip(events, messages, strict=True), key=lambda p: p[0].event_id)
    ]
    stmt = (
        insert(DeliveryEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
        .returning(col(DeliveryEvent.provider_event_id))
    )
    return set(session.connection().execute(stmt).scalars())


def _find_messages(session: Session, events: list[ProviderEvent]) -> list[Message | None]:
    """Each event's ledger row: by our id first, then by the provider's message id."""
    ids = {e.message_id for e in events if e.message_id}
    by_id = {m.id: m for m in session.exec(select(Message).where(col(Message.id).in_(ids)))} if ids else {}
    provider_ids = {e.provider_message_id for e in events
                    if e.provider_message_id and e.message_id not in by_id}
    # A merged request (one email to many recipients) gives all its recipients one message id:
    # it only identifies a message when it names one row.
    sharing: dict[str | None, list[Message]] = {}
    if provider_ids:
        for m in session.exec(select(Message).where(col(Message.provider_message_id).in_(provider_ids))):
            sharing.setdefault(m.provider_message_id, []).append(m)
    by_provider_id = {pid: rows[0] for pid, rows in sharing.items() if len(rows) == 1}
    return [by_id.get(e.message_id) or by_provider_id.get(e.provider_message_id) for e in events]


def apply_provider_events(
    session: Session, events: list[ProviderEvent], now: datetime | None = None
) -> DeliveryEventReport:
    """Stores each new event and applies what it means; events seen before change nothing."""
    now = now or utcnow()
    report = DeliveryEventReport(received=len(events))
    if not events:
        return report
    messages = _find_messages(session, events)
    inserted = record_new_events(session, events, messages, now)
    # An event repeated within one request counts once.
    first_of_each: dict[str, tuple[ProviderEvent, Message | None]] = {}
    for event, message in zip(events, messages, strict=True):
        if event.event_id in inserted:
            first_of_each.setdefault(event.event_id, (event, message))
    report.duplicates = len(events) - len(first_of_each)
    fresh = list(first_of_each.values())
    report.unmatched = sum(message is None for _, message in fresh)
    report.status_changes = advance_delivery_status(session, [
        DeliveryMove(message_id=m.id, current_status=m.status,
                     status=MessageStatus(e.status) if e.status else None, occurred_at=e.occurred_at,
                     error=e.error, provider=e.provider, provider_message_id=e.provider_message_id)
        for e, m in fresh if m is not None and m.id is not None], now)
    late = late_failures(fresh)
    if late:
        report.late_failures = len(late)
        add_failure_reasons(session, {f.message_id: f.reason for f in late}, now)
        result = fallback_in(session, late, now, load_policy())
        report.fallbacks = sum(count for status, count in result.counts.items() if status != "duplicate")
    for event, message in fresh:
        if not (event.suppress_reason or event.opt_out_topic):
            continue
        address = _address(session, event, message)
        if event.suppress_reason and address:
            source = webhook_source(event.provider)
            if suppress_address(session, event.channel, address, event.suppress_reason, source):
                report.suppressed += 1
                log.info("suppressed %s on %s: %s", mask_address(event.channel, address),
                         event.channel, event.suppress_reason)
        if event.opt_out_topic:
            if message is not None:
                owners = [message.customer_id]
                topic = message.topic if event.opt_out_topic == MESSAGE_TOPIC else event.opt_out_topic
            else:  # no message to go by: whoever has the address, from everything on the channel
                owners = customers_with_address(session, event.channel, address) if address else []
                topic = ANY
            for customer_id in owners:
                report.opt_outs += opt_out(session, customer_id, event.channel, topic,
                                           webhook_source(event.provider))
    return report


def late_failures(fresh: list[tuple[ProviderEvent, Message | None]]) -> list[Failure]:
    """The events that fail a message not failed before, with a ``Permanent`` reason: one per
    message (Twilio may report ``failed`` and then ``undelivered``)."""
    out: dict[int, Failure] = {}
    for event, m in fresh:
        if (m is None or m.id is None or event.permanent is None or event.status is not DeliveryStatus.failed
                or PROGRESS_RANK.get(m.status, 0) >= PROGRESS_RANK[MessageStatus.failed]):
            continue
        out.setdefault(m.id, Failure(m.id, m.customer_id, m.channel, m.topic, MessageStatus.failed.value,
                                     PERMANENT.code(event.permanent.value), event.error or ""))
    return list(out.values())


def _address(session: Session, event: ProviderEvent, message: Message | None) -> str | None:
    """The address an event is about, spelled as the customer record has it (the policy
    matches suppressions on that spelling); the provider's spelling when they differ."""
    stored = None
    if message is not None and (customer := session.get(Customer, message.customer_id)) is not None:
        stored = addresses_of(session, [customer], [event.channel])[message.customer_id].get(event.channel)
    if not event.address:
        return stored
    if stored and stored.strip().lower() == event.address.strip().lower():
        return stored
    return event.address.strip()
