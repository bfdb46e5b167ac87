"""New ledger rows: reserved decisions in bulk, fallback labels, escalation fallbacks.

Policy decides what each row says; this module writes it. The bulk INSERT runs straight through
the driver (``INSERT ... ON CONFLICT DO NOTHING RETURNING``): the ledger's unique
(dedupe_key, customer_id, channel) turns a row that is already there into a no-op.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, or_, select, update
from sqlmodel import Session, col

from orchestrator.ledger.tables import MESSAGE, stored_time
from orchestrator.models import Message, MessageStatus
from orchestrator.reasons import ESCALATION, fallback_code

# Ledger columns written on reservation, with the PostgreSQL type each is read as.
_COLUMNS = {
    "dedupe_key": "text", "customer_id": "int", "topic": "text", "channel": "text", "tone": "text",
    "template": "text", "priority": "int", "status": "text", "send_at": "timestamptz",
    "deadline": "timestamptz", "reason_codes": "json", "reason_text": "text", "data": "json",
    "campaign_id": "int", "incident_id": "int", "variant": "text", "attempts": "int",
    "created_at": "timestamptz", "updated_at": "timestamptz",
}
_NAMES = ", ".join(_COLUMNS)
_CONFLICT = (
    "ON CONFLICT (dedupe_key, customer_id, channel) DO NOTHING RETURNING id, dedupe_key, customer_id, channel"
)
# PostgreSQL: the chunk travels as ONE JSON parameter (rows as arrays) that the server unpacks.
# The statement text is the same for any chunk size, and the client serialises with the C json
# encoder instead of adapting thousands of values one by one.
_PG_INSERT = (
    f"INSERT INTO message ({_NAMES}) SELECT "
    + ", ".join(
        f"r->{i}" if kind == "json" else f"(r->>{i})::{kind}" for i, kind in enumerate(_COLUMNS.values())
    )
    + f" FROM json_array_elements(%s::json) AS r {_CONFLICT}"
)
_SQLITE_ROW = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
_SQLITE_BATCH = 32766 // len(_COLUMNS)  # SQLite's limit on bound variables per statement

# Rows a fallback label may still change: a dispatcher that already claimed one keeps its own copy.
WAITING = (MessageStatus.planned, MessageStatus.deferred, MessageStatus.suppressed)


class ReservedIntent(Protocol):
    """What a reserved row takes from its intent (``policy.intents.Intent``)."""

    dedupe_key: str
    template: str
    deadline: datetime | None
    data: dict[str, Any]
    campaign_id: int | None
    incident_id: int | None
    variant: str | None


class ReservedDecision(Protocol):
    """What a reserved row takes from its decision (``policy.intents.Decision``)."""

    customer_id: int
    topic: str
    channel: str
    tone: str
    priority: int
    send_at: datetime
    reason_codes: list[str]
    reason_text: str

    @property
    def status(self) -> str: ...


class RowEncoder:
    """Driver-ready reserved rows; repeated values (a campaign's data, common reason lists, send
    times) encoded once."""

    def __init__(self, sqlite: bool) -> None:
        self.sqlite = sqlite
        self._data: dict[int, tuple[Any, str]] = {}
        self._codes: dict[tuple[str, ...], str] = {}
        self._times: dict[datetime, str] = {}

    def data(self, value: dict[str, Any] | None) -> Any:
        if not self.sqlite:  # nested inside the chunk's JSON document
            return value or {}
        hit = self._data.get(id(value))
        if hit is None or hit[0] is not value:
            hit = self._data[id(value)] = (value, json.dumps(value or {}))
        return hit[1]

    def codes(self, codes: list[str]) -> Any:
        if not self.sqlite:
            return codes
        key = tuple(codes)
        text = self._codes.get(key)
        if text is None:
            text = self._codes[key] = json.dumps(codes)
        return text

    def time(self, value: datetime | None) -> str | None:
        if value is None:
            return None
        text = self._times.get(value)
        if text is None:
            stored = stored_time(value, self.sqlite)
            text = self._times[value] = stored.isoformat() if isinstance(stored, datetime) else stored
        return text

    def row(self, intent: ReservedIntent, d: ReservedDecision, now: datetime) -> tuple[Any, ...]:
        t = self.time
        return (
            intent.dedupe_key, d.customer_id, d.topic, d.channel, d.tone, intent.template, d.priority,
            d.status, t(d.send_at), t(intent.deadline), self.codes(d.reason_codes), d.reason_text,
            self.data(intent.data), intent.campaign_id, intent.incident_id, intent.variant, 0, t(now), t(now),
        )


def insert_reserved(session: Session, rows: list[tuple[Any, ...]], sqlite: bool
                    ) -> list[tuple[int, str, int, str]]:
    """Bulk INSERT of ``RowEncoder`` rows in the caller's transaction; returns (id, dedupe key,
    customer id, channel) of the rows actually inserted (a row already there is skipped)."""
    if not rows:
        return []
    conn = session.connection()
    if not sqlite:
        return list(conn.exec_driver_sql(_PG_INSERT, (json.dumps(rows),)))
    out: list[tuple[int, str, int, str]] = []
    for start in range(0, len(rows), _SQLITE_BATCH):
        part = rows[start : start + _SQLITE_BATCH]
        sql = f"INSERT INTO message ({_NAMES}) VALUES {', '.join([_SQLITE_ROW] * len(part))} {_CONFLICT}"
        out.extend(conn.exec_driver_sql(sql, tuple(v for row in part for v in row)))
    return out


def put_reason_first(session: Session, labels: dict[int, tuple[str, str]]) -> None:
    """For each message id: its (code, sentence) go first in the row's reason codes and text,
    in the caller's transaction.

    Only rows still waiting change (a dispatcher that already claimed one keeps its own copy).
    """
    if not labels:
        return
    m = MESSAGE.c
    conn = session.connection()
    current = {
        row.id: row for row in conn.execute(
            select(m.id, m.reason_codes, m.reason_text).where(m.id.in_(list(labels)))
        )
    }
    params = []
    for message_id, (code, text) in labels.items():
        row = current[message_id]
        params.append({
            "b_id": message_id,
            "b_codes": [code, *[c for c in row.reason_codes or [] if c != code]],
            "b_text": f"{text} {row.reason_text}".strip(),
        })
    conn.execute(
        update(MESSAGE)
        .where(m.id == bindparam("b_id"), or_(*(m.status == s.value for s in WAITING)))
        .values(reason_codes=bindparam("b_codes"), reason_text=bindparam("b_text")),
        params,
    )


def plan_escalation_fallback(session: Session, task_id: int | None, customer_id: int, original: Message,
                             channel: str, now: datetime) -> int | None:
    """A new planned message on ``channel`` for an overdue phone task's original message (same
    template, tone and data); the dedupe key ``escalation:task-<id>`` makes it once only."""
    dedupe_key = f"escalation:task-{task_id}"
    existing = session.scalars(
        select(col(Message.id)).where(
            col(Message.dedupe_key) == dedupe_key,
            col(Message.customer_id) == customer_id,
            col(Message.channel) == channel,
        )
    ).first()
    if existing is not None:
        return existing
    message = Message(
        dedupe_key=dedupe_key,
        customer_id=customer_id,
        topic=original.topic,
        channel=channel,
        tone=original.tone,
        template=original.template,
        locale=original.locale,
        priority=original.priority,
        status=MessageStatus.planned.value,
        send_at=now,
        reason_codes=[ESCALATION.code("phone_overdue"), fallback_code("phone", channel)],
        reason_text=f"Phone task {task_id} was not handled within its SLA; falling back to {channel}.",
        data=dict(original.data or {}),
        campaign_id=original.campaign_id,
        incident_id=original.incident_id,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    return message.id
