"""Decisions for a chunk of customers from bulk queries, and their atomic reservation in the ledger.

A chunk costs a fixed handful of queries whatever its size: customers, preferences, consent,
suppressions, recent history, existing dedupe keys; then one multi-row INSERT.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from channels.channel_set import channel_names
from channels.events import EventKind
from orchestrator.consent import current_consent
from orchestrator.contact_points import channel_columns, contact_points
from orchestrator.db import get_engine, member_of
from orchestrator.ledger.campaigns import cancelled_campaigns
from orchestrator.ledger.reservations import RowEncoder, insert_reserved
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import (
    CAP_HOLDING_STATUSES,
    ContactPreference,
    Customer,
    CustomerFeedback,
    DeliveryEvent,
    MessageStatus,
    Suppression,
    as_utc,
    table_of,
)
from orchestrator.policy.config import Policy, PolicyError, SunsetRule, load_policy
from orchestrator.policy.decide import decide_for_customer
from orchestrator.policy.intents import CustomerFacts, Decision, HistoryEntry, Intent
from orchestrator.policy.quiet_hours import personal_window
from orchestrator.policy.timing import parse_send_time, zone_for

_customer = table_of(Customer)
_pref = table_of(ContactPreference)
_suppression = table_of(Suppression)
_event = table_of(DeliveryEvent)
_feedback = table_of(CustomerFeedback)
_HOLDING = frozenset(s.value for s in CAP_HOLDING_STATUSES)


@dataclass
class ReservedRow:
    customer_id: int
    channel: str
    status: str  # planned, deferred, suppressed, or "duplicate" (already in the ledger)
    message_id: int | None
    dedupe_key: str = ""
    send_at: datetime | None = None


# Counted in a result, never written: intents of a campaign an operator cancelled.
CAMPAIGN_CANCELLED = "cancelled"


@dataclass
class ReserveResult:
    """One row per ledger row decided (or found already there), and how many of each status."""

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
            if channel not in channel_names():
                raise PolicyError(f"intent for customer {intent.customer_id}: unknown channel {channel!r}")
        for name, value in (("earliest", intent.earliest), ("deadline", intent.deadline)):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"intent for customer {intent.customer_id}: {name} must be timezone-aware")
        if not intent.dedupe_key:
            raise ValueError(f"intent for customer {intent.customer_id}: dedupe_key is empty")


def load_facts(
    session: Session, customer_ids: list[int], now: datetime, policy: Policy,
    topics: Collection[str] = (),
) -> dict[int, CustomerFacts]:
    """Everything the decisions need for a chunk of customers, in a fixed number of queries.
    ``topics``: the chunk's intents' (whether the policy's sunset applies to any of them)."""
    conn = session.connection()
    ids = sorted(set(customer_ids))
    facts: dict[int, CustomerFacts] = {}
    owners: dict[tuple[str, str], list[int]] = defaultdict(list)  # (channel, address) -> customers
    c = _customer.c
    by_column = channel_columns()
    profile = sorted({col for col in by_column.values() if col is not None})
    query = select(c.id, c.timezone, c.tier, *(c[col] for col in profile)).where(
        member_of(session, c.id, ids))
    for cid, tz, tier, *values in conn.execute(query).all():
        row = dict(zip(profile, values, strict=True))
        addresses = {ch: row[col] for ch, col in by_column.items() if col is not None}
        facts[cid] = CustomerFacts(id=cid, tier=tier, zone=zone_for(tz), addresses=addresses)
    if not facts:
        return facts
    found = list(facts)
    points = [ch for ch, col in by_column.items() if col is None]
    if points:
        for cid, channel, address in contact_points(session, found, points):
            facts[cid].addresses[channel] = address
    for cid, f in facts.items():
        for channel, on_file in f.addresses.items():
            if on_file:
                owners[(channel, on_file)].append(cid)
    p = _pref.c
    query = select(
        p.customer_id, p.preferred_channels, p.frequency, p.quiet_start, p.quiet_end, p.do_not_contact
    ).where(member_of(session, p.customer_id, found))
    for cid, preferred, frequency, quiet_start, quiet_end, do_not_contact in conn.execute(query).all():
        f = facts[cid]
        f.preferred_channels = [ch for ch in (preferred or []) if ch in by_column]
        f.frequency = frequency or "any"
        f.quiet = personal_window(quiet_start, quiet_end)
        f.do_not_contact = bool(do_not_contact)
    for key, state in current_consent(session, found).items():
        facts[key[0]].consent[key] = state
    s = _suppression.c
    by_channel: dict[str, list[str]] = defaultdict(list)
    for channel, address in owners:
        by_channel[channel].append(address)
    # One query; each channel's addresses are matched through the (channel, address) index.
    if by_channel:
        query = select(s.channel, s.address, s.reason).where(
            or_(*(and_(s.channel == ch, member_of(session, s.address, a)) for ch, a in by_channel.items()))
        )
        for channel, address, reason in conn.execute(query).all():
            for cid in owners.get((channel, address), ()):
                facts[cid].suppressed[channel] = reason
    since = now - policy.longest_window
    m = MESSAGE.c
    # Status is filtered here, not in SQL: a status condition tempts planners onto the
    # (status, send_at) index, which reads every recent message instead of the chunk's customers'.
    query = select(m.customer_id, m.topic, m.channel, m.send_at, m.status).where(
        member_of(session, m.customer_id, found), m.send_at > since
    )
    for cid, topic, channel, send_at, status in conn.execute(query).all():
        if status in _HOLDING:
            facts[cid].history.append(HistoryEntry(topic, channel, as_utc(send_at)))
    sunset = {ch: rule for ch, rule in policy.sunset.items() if set(rule.topics) & set(topics)}
    if sunset:
        for (cid, channel), sent in unengaged(session, found, now, sunset).items():
            facts[cid].unengaged[channel] = sent
    return facts


_DELIVERED = (MessageStatus.sent.value, MessageStatus.delivered.value)
_READ = (EventKind.open.value, EventKind.click.value)  # a privacy proxy's open (machine_open) says nothing


def unengaged(session: Session, customer_ids: list[int], now: datetime, sunset: Mapping[str, SunsetRule]
              ) -> dict[tuple[int, str], int]:
    """(customer, channel) -> messages of the channel's sunset topics that reached the customer there
    within its window, where they are at least its ``after`` and none was opened, clicked or answered
    (no reply from the customer on that channel within the window).

    Two queries: the counts per customer and channel (the ledger's (customer, send time) index), then,
    for the few customers past a threshold, whether they read or answered anything there."""
    conn = session.connection()
    m = MESSAGE.c
    past: dict[tuple[int, str], int] = {}
    for channel, rule in sunset.items():
        query = (select(m.customer_id, func.count())
                 .where(member_of(session, m.customer_id, customer_ids), m.send_at > now - rule.window,
                        m.channel == channel, m.topic.in_(rule.topics), m.status.in_(_DELIVERED))
                 .group_by(m.customer_id))
        past.update({(cid, channel): sent for cid, sent in conn.execute(query) if sent >= rule.after})
    if not past:
        return {}
    ids = sorted({cid for cid, _ in past})
    e, f = _event.c, _feedback.c
    sent = or_(*(and_(m.channel == ch, m.send_at > now - rule.window) for ch, rule in sunset.items()))
    opened = (select(m.customer_id, m.channel).join(_event, e.message_id == m.id)
              .where(member_of(session, m.customer_id, ids), sent, e.kind.in_(_READ)))
    # Replies are the customer's words on the channel (an SMS or email reply, a survey answer).
    said = or_(*(and_(f.channel == ch, f.created_at > now - rule.window) for ch, rule in sunset.items()))
    answered = select(f.customer_id, f.channel).where(member_of(session, f.customer_id, ids), said)
    for cid, channel in conn.execute(opened.union(answered)):
        past.pop((cid, channel), None)
    return past


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
    facts = load_facts(session, [i.customer_id for i in intents], now, policy, {i.topic for i in intents})
    return _decide_loaded(intents, facts, now, policy)


def _existing(session: Session, intents: list[Intent]) -> dict[tuple[str, int], list[tuple[int, str, str]]]:
    """Ledger rows already present for the chunk's (dedupe key, customer) pairs."""
    m = MESSAGE.c
    keys = sorted({i.dedupe_key for i in intents})
    ids = sorted({i.customer_id for i in intents})
    wanted = {(i.dedupe_key, i.customer_id) for i in intents}
    out: dict[tuple[str, int], list[tuple[int, str, str]]] = defaultdict(list)
    query = select(m.id, m.dedupe_key, m.customer_id, m.channel, m.status).where(
        member_of(session, m.customer_id, ids)
    )
    query = query.where(member_of(session, m.dedupe_key, keys)) if len(keys) <= 500 else query
    for row in session.connection().execute(query):
        if (row.dedupe_key, row.customer_id) in wanted:
            out[(row.dedupe_key, row.customer_id)].append((row.id, row.channel, row.status))
    return out


def _lock_customers(session: Session, ids: list[int]) -> None:
    """PostgreSQL: serialise concurrent chunks per customer. Ordered by id, so no deadlock."""
    c = _customer.c
    session.connection().execute(
        select(c.id).where(member_of(session, c.id, ids)).order_by(c.id).with_for_update()
    )


def reserve_chunk(
    intents: list[Intent], now: datetime | None = None, policy: Policy | None = None, url: str | None = None
) -> ReserveResult:
    """Decides and writes the ledger rows for a chunk of intents in one transaction of its own
    (``reserve_in`` does the work)."""
    policy = policy or load_policy()
    now = now or datetime.now(UTC)
    validate_intents(intents, policy)
    if not intents:
        return ReserveResult()
    with Session(get_engine(url)) as session, session.begin():
        return reserve_in(session, intents, now, policy)


def reserve_in(session: Session, intents: list[Intent], now: datetime, policy: Policy) -> ReserveResult:
    """Decides and writes the ledger rows for a chunk of intents in the caller's transaction.

    Caps hold under concurrency: PostgreSQL locks the chunk's customer rows first; SQLite's
    BEGIN IMMEDIATE already admits one writer at a time. Intents whose (dedupe key, customer)
    already has a row are reported as ``duplicate`` and not decided again.
    """
    validate_intents(intents, policy)
    result = ReserveResult()
    stopped = cancelled_campaigns(session, (i.campaign_id for i in intents if i.campaign_id is not None))
    if stopped:  # an operator cancelled the campaign: nothing more is reserved for it
        result.counts[CAMPAIGN_CANCELLED] = sum(1 for i in intents if i.campaign_id in stopped)
        intents = [i for i in intents if i.campaign_id not in stopped]
    if not intents:
        return result
    sqlite = session.get_bind().dialect.name == "sqlite"
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
    facts = load_facts(session, [i.customer_id for i in unique], now, policy, {i.topic for i in unique})
    decisions = _decide_loaded(unique, facts, now, policy)
    by_key = {(i.dedupe_key, i.customer_id): i for i in unique}
    encode = RowEncoder(sqlite)
    rows = [encode.row(by_key[(d.dedupe_key, d.customer_id)], d, now) for d in decisions]
    written = insert_reserved(session, rows, sqlite)
    inserted = {(key, cid, channel): mid for mid, key, cid, channel in written}
    for d in decisions:
        message_id = inserted.get((d.dedupe_key, d.customer_id, d.channel))
        d.message_id = message_id
        status = d.status if message_id is not None else "duplicate"
        result.rows.append(ReservedRow(d.customer_id, d.channel, status, message_id, d.dedupe_key, d.send_at))
    for (dedupe_key, cid), found in existing.items():
        for mid, channel, _status in found:
            result.rows.append(ReservedRow(cid, channel, "duplicate", mid, dedupe_key))
    for row in result.rows:
        result.counts[row.status] = result.counts.get(row.status, 0) + 1
    return result
