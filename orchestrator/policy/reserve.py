"""Decisions for a chunk of customers from bulk queries, and their atomic reservation in the ledger.

A chunk costs a fixed handful of queries whatever its size: customers, preferences, consent,
suppressions, recent history, existing dedupe keys; then one multi-row INSERT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from orchestrator.consent import current_consent
from orchestrator.db import get_engine, is_sqlite
from orchestrator.models import (
    CAP_HOLDING_STATUSES,
    ContactPreference,
    Customer,
    Message,
    Suppression,
)
from orchestrator.policy.config import CHANNELS, Policy, PolicyError, load_policy
from orchestrator.policy.decide import decide_for_customer
from orchestrator.policy.intents import CustomerFacts, Decision, HistoryEntry, Intent
from orchestrator.policy.timing import parse_send_time, zone_for

_customer = Customer.__table__  # type: ignore[attr-defined]
_pref = ContactPreference.__table__  # type: ignore[attr-defined]
_message = Message.__table__  # type: ignore[attr-defined]
_suppression = Suppression.__table__  # type: ignore[attr-defined]
_HOLDING = [s.value for s in CAP_HOLDING_STATUSES]


@dataclass
class ReservedRow:
    customer_id: int
    channel: str
    status: str  # planned, deferred, suppressed, or "duplicate" (already in the ledger)
    message_id: int | None
    dedupe_key: str = ""
    send_at: datetime | None = None


@dataclass
class ReserveResult:
    rows: list[ReservedRow] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # status -> number of rows

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)


def validate_intents(intents: list[Intent], policy: Policy) -> None:
    """Bad input fails the whole chunk before anything is decided, naming what is wrong."""
    for intent in intents:
        policy.topic(intent.topic)
        parse_send_time(intent.send_time)
        for channel in intent.channels or ():
            if channel not in CHANNELS:
                raise PolicyError(f"intent for customer {intent.customer_id}: unknown channel {channel!r}")
        for name, value in (("earliest", intent.earliest), ("deadline", intent.deadline)):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"intent for customer {intent.customer_id}: {name} must be timezone-aware")
        if not intent.dedupe_key:
            raise ValueError(f"intent for customer {intent.customer_id}: dedupe_key is empty")


def _clock(value: str | None) -> time | None:
    if not value:
        return None
    try:
        hours, minutes = (int(p) for p in value.split(":"))
        return time(hours, minutes)
    except ValueError:
        return None


def load_facts(
    session: Session, customer_ids: list[int], now: datetime, policy: Policy
) -> dict[int, CustomerFacts]:
    """Everything the decisions need for a chunk of customers, in a fixed number of queries."""
    conn = session.connection()
    ids = sorted(set(customer_ids))
    facts: dict[int, CustomerFacts] = {}
    address_owner: dict[str, list[tuple[int, str]]] = defaultdict(list)
    c = _customer.c
    for row in conn.execute(
        select(c.id, c.email, c.phone, c.x_user_id, c.timezone, c.tier).where(c.id.in_(ids))
    ):
        addresses = {"email": row.email, "sms": row.phone, "phone": row.phone, "social": row.x_user_id}
        facts[row.id] = CustomerFacts(
            id=row.id, tier=row.tier, zone=zone_for(row.timezone), addresses=addresses
        )
        for channel, address in addresses.items():
            if address:
                address_owner[address].append((row.id, channel))
    if not facts:
        return facts
    found = list(facts)
    p = _pref.c
    for row in conn.execute(
        select(p.customer_id, p.preferred_channels, p.frequency, p.quiet_start, p.quiet_end, p.do_not_contact)
        .where(p.customer_id.in_(found))
    ):
        f = facts[row.customer_id]
        f.preferred_channels = [ch for ch in (row.preferred_channels or []) if ch in CHANNELS]
        f.frequency = row.frequency or "any"
        start, end = _clock(row.quiet_start), _clock(row.quiet_end)
        f.quiet = (start, end) if start is not None and end is not None and start != end else None
        f.do_not_contact = bool(row.do_not_contact)
    for key, state in current_consent(session, found).items():
        facts[key[0]].consent[key] = state
    if address_owner:
        s = _suppression.c
        for row in conn.execute(
            select(s.channel, s.address, s.reason).where(s.address.in_(list(address_owner)))
        ):
            for cid, channel in address_owner[row.address]:
                # An SMS suppression also makes the number unusable for calls only if recorded for phone.
                if channel == row.channel:
                    facts[cid].suppressed[channel] = row.reason
    since = now - policy.longest_window
    m = _message.c
    for row in conn.execute(
        select(m.customer_id, m.topic, m.channel, m.send_at).where(
            m.customer_id.in_(found), m.status.in_(_HOLDING), m.send_at > since
        )
    ):
        facts[row.customer_id].history.append(HistoryEntry(row.topic, row.channel, _aware(row.send_at)))
    return facts


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _decide_loaded(
    intents: list[Intent], facts: dict[int, CustomerFacts], now: datetime, policy: Policy
) -> list[Decision]:
    by_customer: dict[int, list[Intent]] = defaultdict(list)
    for intent in intents:
        by_customer[intent.customer_id].append(intent)
    decisions: list[Decision] = []
    for cid, group in by_customer.items():
        f = facts.get(cid)
        if f is None:
            raise ValueError(f"unknown customer id {cid}")
        decisions.extend(decide_for_customer(group, f, now, policy))
    return decisions


def decide_chunk(session: Session, intents: list[Intent], now: datetime, policy: Policy) -> list[Decision]:
    """Decisions for a chunk of intents (bulk-loaded facts, pure decisions). Writes nothing."""
    validate_intents(intents, policy)
    facts = load_facts(session, [i.customer_id for i in intents], now, policy)
    return _decide_loaded(intents, facts, now, policy)


def _existing(session: Session, intents: list[Intent]) -> dict[tuple[str, int], list[tuple[int, str, str]]]:
    """Ledger rows already present for the chunk's (dedupe key, customer) pairs."""
    m = _message.c
    keys = sorted({i.dedupe_key for i in intents})
    ids = sorted({i.customer_id for i in intents})
    wanted = {(i.dedupe_key, i.customer_id) for i in intents}
    out: dict[tuple[str, int], list[tuple[int, str, str]]] = defaultdict(list)
    query = select(m.id, m.dedupe_key, m.customer_id, m.channel, m.status).where(m.customer_id.in_(ids))
    query = query.where(m.dedupe_key.in_(keys)) if len(keys) <= 500 else query
    for row in session.connection().execute(query):
        if (row.dedupe_key, row.customer_id) in wanted:
            out[(row.dedupe_key, row.customer_id)].append((row.id, row.channel, row.status))
    return out


def _lock_customers(session: Session, ids: list[int]) -> None:
    """PostgreSQL: serialise concurrent chunks per customer. Ordered by id, so no deadlock."""
    c = _customer.c
    session.connection().execute(select(c.id).where(c.id.in_(ids)).order_by(c.id).with_for_update())


def _row(intent: Intent, d: Decision, now: datetime) -> dict[str, Any]:
    return {
        "dedupe_key": intent.dedupe_key,
        "customer_id": d.customer_id,
        "topic": d.topic,
        "channel": d.channel,
        "tone": d.tone,
        "template": intent.template,
        "priority": d.priority,
        "status": d.status,
        "send_at": d.send_at,
        "deadline": intent.deadline,
        "reason_codes": d.reason_codes,
        "reason_text": d.reason_text,
        "data": intent.data or {},
        "campaign_id": intent.campaign_id,
        "incident_id": intent.incident_id,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def reserve_chunk(
    intents: list[Intent], now: datetime | None = None, policy: Policy | None = None, url: str | None = None
) -> ReserveResult:
    """Decides and writes the ledger rows for a chunk of intents in one transaction.

    Caps hold under concurrency: PostgreSQL locks the chunk's customer rows first; SQLite's
    BEGIN IMMEDIATE already admits one writer at a time. Intents whose (dedupe key, customer)
    already has a row are reported as ``duplicate`` and not decided again.
    """
    policy = policy or load_policy()
    now = now or datetime.now(UTC)
    validate_intents(intents, policy)
    result = ReserveResult()
    if not intents:
        return result
    engine = get_engine(url)
    sqlite = is_sqlite(engine)
    with Session(engine) as session, session.begin():
        ids = sorted({i.customer_id for i in intents})
        if not sqlite:
            _lock_customers(session, ids)
        existing = _existing(session, intents)
        fresh = [i for i in intents if (i.dedupe_key, i.customer_id) not in existing]
        seen: set[tuple[str, int]] = set()
        unique: list[Intent] = []
        for intent in fresh:  # the same key twice within one chunk is one intent
            key = (intent.dedupe_key, intent.customer_id)
            if key not in seen:
                seen.add(key)
                unique.append(intent)
        facts = load_facts(session, [i.customer_id for i in unique], now, policy)
        decisions = _decide_loaded(unique, facts, now, policy)
        by_key = {(i.dedupe_key, i.customer_id): i for i in unique}
        rows = [_row(by_key[(d.dedupe_key, d.customer_id)], d, now) for d in decisions]
        inserted: dict[tuple[str, int, str], int] = {}
        if rows:
            insert = sqlite_insert if sqlite else pg_insert
            m = _message.c
            stmt = (
                insert(_message)
                .on_conflict_do_nothing(index_elements=["dedupe_key", "customer_id", "channel"])
                .returning(m.id, m.dedupe_key, m.customer_id, m.channel)
            )
            for r in session.connection().execute(stmt, rows):
                inserted[(r.dedupe_key, r.customer_id, r.channel)] = r.id
    for d in decisions:
        message_id = inserted.get((d.dedupe_key, d.customer_id, d.channel))
        d.message_id = message_id
        status = d.status if message_id is not None else "duplicate"
        result.rows.append(ReservedRow(d.customer_id, d.channel, status, message_id, d.dedupe_key, d.send_at))
    for (key, cid), found in existing.items():
        for mid, channel, _status in found:
            result.rows.append(ReservedRow(cid, channel, "duplicate", mid, key))
    for row in result.rows:
        result.counts[row.status] = result.counts.get(row.status, 0) + 1
    return result
