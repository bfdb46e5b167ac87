"""Delivery events moving ledger rows forward (sent -> delivered, bounced, failed...).

A row only ever moves to a higher rank, so a late "processed" cannot turn a delivered message
back into a sent one. Failures are final, and rows we decided not to send are never touched by a
provider event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, literal, select, update
from sqlmodel import Session

from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus
from orchestrator.privacy import redact_text

# How far along a message is.
PROGRESS_RANK: dict[str, int] = {
    MessageStatus.planned: 0,
    MessageStatus.deferred: 0,
    MessageStatus.sending: 0,
    MessageStatus.reconcile: 0,  # an event proves the provider got it: resolves the doubt
    MessageStatus.sent: 1,
    MessageStatus.delivered: 2,
    MessageStatus.failed: 3,
    MessageStatus.bounced: 3,
    MessageStatus.cancelled: 4,
    MessageStatus.suppressed: 4,
}


@dataclass(frozen=True)
class DeliveryMove:
    """One event's claim on one ledger row: move it to ``status`` (None: the event moves nothing)."""

    message_id: int
    current_status: str  # the row's status when the event was matched to it
    status: MessageStatus | None
    occurred_at: datetime | None = None
    error: str | None = None
    provider: str | None = None
    provider_message_id: str | None = None


def advance_delivery_status(session: Session, moves: list[DeliveryMove], now: datetime) -> int:
    """Moves each message forward to its event's status; returns how many moves took.

    One conditional UPDATE per target status (executed for many rows): a row moves only
    from a lower rank, so events for one message, applied in any order or by concurrent
    requests, cannot move it backwards. On PostgreSQL the rows are locked first, in id
    order, so concurrent batches cannot deadlock. The lock is FOR NO KEY UPDATE: the events
    just inserted hold KEY SHARE locks on their messages (their foreign key), and FOR UPDATE
    would wait for a concurrent request's KEY SHARE while that request waits for ours.
    """
    ids = sorted({move.message_id for move in moves})
    if not ids:
        return 0
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(select(MESSAGE.c.id).where(MESSAGE.c.id.in_(ids)).order_by(MESSAGE.c.id)
                     .with_for_update(key_share=True))
    # What the report counts: the rank each message reaches, walking its events in order.
    reached = {move.message_id: PROGRESS_RANK.get(move.current_status, 0) for move in moves}
    taken = 0
    by_status: dict[MessageStatus, list[dict[str, Any]]] = {}
    for move in moves:
        if move.status is None:
            continue
        if PROGRESS_RANK[move.status] > reached[move.message_id]:
            reached[move.message_id], taken = PROGRESS_RANK[move.status], taken + 1
        by_status.setdefault(move.status, []).append({
            "mid": move.message_id,
            "when": move.occurred_at or now,
            "error": redact_text(move.error)[:1000] if move.error else None,
            "provider": move.provider,
            "pmid": move.provider_message_id,
        })
    c = MESSAGE.c
    for status, params in by_status.items():
        values: dict[str, Any] = {
            "status": status.value,
            "updated_at": now,
            "last_error": func.coalesce(bindparam("error"), c.last_error),
            # The report can overtake dispatch recording the provider's answer: fill the gap.
            "provider": func.coalesce(c.provider, bindparam("provider")),
            "provider_message_id": func.coalesce(c.provider_message_id, bindparam("pmid")),
        }
        if status in (MessageStatus.sent, MessageStatus.delivered):
            values["sent_at"] = func.coalesce(c.sent_at, bindparam("when"))
        if status is MessageStatus.delivered:
            values["delivered_at"] = func.coalesce(c.delivered_at, bindparam("when"))
        # literal() values, not a list: an expanding IN cannot be executed for many rows
        lower = [literal(str(s)) for s, rank in PROGRESS_RANK.items() if rank < PROGRESS_RANK[status]]
        conn.execute(update(MESSAGE).where(c.id == bindparam("mid"), c.status.in_(lower)).values(**values),
                     params)
    return taken


def add_failure_reasons(session: Session, reasons: dict[int, str], now: datetime) -> None:
    """Appends each failed message's reason code (``permanent:outside_window``) to its reasons, as
    dispatch does for a refusal at send time, so ``explain`` says why a message that the provider
    first accepted failed later. Rows that are not ``failed`` or already carry the code are left."""
    if not reasons:
        return
    conn = session.connection()
    c = MESSAGE.c
    rows = conn.execute(select(c.id, c.reason_codes).where(
        c.id.in_(sorted(reasons)), c.status == MessageStatus.failed.value)).all()
    params = [{"mid": row.id, "codes": [*(row.reason_codes or []), reasons[row.id]]}
              for row in rows if reasons[row.id] not in (row.reason_codes or [])]
    if params:
        conn.execute(update(MESSAGE).where(c.id == bindparam("mid"))
                     .values(reason_codes=bindparam("codes"), updated_at=now), params)
