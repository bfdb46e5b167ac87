"""Applying a chunk of valid rows to the database, in one transaction.

Customers are upserted (blank values leave the stored ones alone, attributes merge key by key);
contact points inserted or replaced; consent and preferences applied only where the file
differs from what the import said last time, read from their audit trails.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from orchestrator.consent import current_consent
from orchestrator.customer_import.columns import PREFERENCE_COLUMNS, PROFILE_COLUMNS
from orchestrator.customer_import.validate import ValidRow
from orchestrator.models import (
    ConsentEvent,
    ContactPoint,
    ContactPreference,
    Customer,
    PreferenceEvent,
    table_of,
    utcnow,
)
from orchestrator.settings import get_settings

SOURCE = "import"  # the source of the audit rows the import writes, and reads back

_CUSTOMER = table_of(Customer)
_PREFERENCE = table_of(ContactPreference)
_CONSENT = table_of(ConsentEvent)
_PREFERENCE_EVENT = table_of(PreferenceEvent)
_POINT = table_of(ContactPoint)
_PREFERENCE_DEFAULTS: dict[str, Any] = {
    "preferred_channels": [], "frequency": "any", "quiet_start": None, "quiet_end": None,
    "do_not_contact": False,
}  # fmt: skip

SessionFactory = Callable[[], AbstractContextManager[Session]]


def _upsert(session: Session, table: Table, key: str, rows: list[dict[str, Any]], update: list[str]) -> None:
    # A list of rows is an executemany: sqlite3 loops in C, psycopg pipelines the rows over
    # one prepared statement (measured: twice as fast as multi-row VALUES with RETURNING).
    dialect = session.get_bind().dialect.name
    insert_into = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stmt = insert_into(table)
    stmt = stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in update})
    session.execute(stmt, rows)


def write_chunk(session_factory: SessionFactory, rows: list[ValidRow]) -> tuple[int, int, int]:
    """Writes one chunk in one transaction; returns (inserted, updated, unchanged)."""
    now = utcnow()
    settings = get_settings()
    columns = ["external_id", *PROFILE_COLUMNS, "attributes"]
    with session_factory() as session:
        query = select(*(_CUSTOMER.c[c] for c in ["id", *columns, "created_at"])).where(
            _CUSTOMER.c.external_id.in_([r.external_id for r in rows])
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # a concurrent import of the same customers waits
        existing = {m["external_id"]: m for m in session.execute(query).mappings()}
        defaults = {
            "name": "", "email": None, "phone": None, "x_user_id": None, "x_handle": None,
            "timezone": settings.default_timezone, "locale": settings.default_locale, "tier": "standard",
            "customer_since": None,
        }  # fmt: skip
        writes: list[dict[str, Any]] = []
        for row in rows:
            old = existing.get(row.external_id)
            base = defaults if old is None else {c: old[c] for c in PROFILE_COLUMNS}
            values = {**base, **row.profile}
            attributes = row.attributes if old is None else {**old["attributes"], **row.attributes}
            if old is not None and values == base and attributes == old["attributes"]:
                continue  # nothing changed: leave the row (and its updated_at) alone
            created = now if old is None else old["created_at"]
            writes.append(
                {"external_id": row.external_id, **values, "attributes": attributes,
                 "created_at": created, "updated_at": now}
            )  # fmt: skip
        if writes:
            _upsert(session, _CUSTOMER, "external_id", writes, [*PROFILE_COLUMNS, "attributes", "updated_at"])
        ids = {k: m["id"] for k, m in existing.items()}
        new = [r.external_id for r in rows if r.external_id not in existing]
        if new:
            query = select(_CUSTOMER.c.external_id, _CUSTOMER.c.id).where(_CUSTOMER.c.external_id.in_(new))
            ids.update({k: v for k, v in session.execute(query)})
        changed = {ids[w["external_id"]] for w in writes}
        changed |= _write_contact_points(session, rows, ids, now)
        changed |= _write_consent(session, rows, ids, now)
        changed |= _write_preferences(session, rows, ids, now)
    inserted = len(new)
    updated = sum(1 for k in existing if ids[k] in changed)
    return inserted, updated, len(existing) - updated


def _write_contact_points(
    session: Session, rows: list[ValidRow], ids: dict[str, int], now: datetime
) -> set[int]:
    """New addresses are inserted, changed ones replaced (and no longer verified); returns the
    customers whose addresses changed."""
    wanted = {(ids[r.external_id], ch): a for r in rows for ch, a in r.contact_points.items()}
    if not wanted:
        return set()
    p = _POINT.c
    query = select(p.id, p.customer_id, p.channel, p.address).where(
        p.customer_id.in_(sorted({cid for cid, _ in wanted})))
    stored = {(cid, ch): (pid, address) for pid, cid, ch, address in session.execute(query)}
    new: list[dict[str, Any]] = [
        {"customer_id": cid, "channel": ch, "address": address, "verified": False, "source": SOURCE,
         "created_at": now, "updated_at": now}
        for (cid, ch), address in wanted.items() if (cid, ch) not in stored]
    changed = [{"pid": stored[key][0], "address": address}
               for key, address in wanted.items() if key in stored and stored[key][1] != address]
    if new:
        session.execute(insert(_POINT), new)
    if changed:
        session.execute(
            _POINT.update().where(p.id == bindparam("pid")).values(
                address=bindparam("address"), verified=False, source=SOURCE, updated_at=now),
            changed,
        )
    return {row["customer_id"] for row in new} | {
        cid for (cid, ch), address in wanted.items() if stored.get((cid, ch), (0, address))[1] != address}


def _write_consent(session: Session, rows: list[ValidRow], ids: dict[str, int], now: datetime) -> set[int]:
    """Records the consent the file states where it differs from what the import said last."""
    wanted = [(ids[r.external_id], key, state) for r in rows for key, state in r.consent.items()]
    if not wanted:
        return set()
    said = current_consent(session, {cid for cid, _, _ in wanted}, source=SOURCE)
    events: list[dict[str, Any]] = [
        {"customer_id": cid, "channel": channel, "topic": topic, "state": state, "source": SOURCE,
         "created_at": now}
        for cid, (channel, topic), state in wanted
        if said.get((cid, channel, topic)) != state
    ]  # fmt: skip
    if events:
        session.execute(insert(_CONSENT), events)
    return {e["customer_id"] for e in events}


def _preferences_said(session: Session, customer_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What the import said last about each preference, from the preference audit trail."""
    query = (
        select(_PREFERENCE_EVENT.c.customer_id, _PREFERENCE_EVENT.c.changes)
        .where(_PREFERENCE_EVENT.c.customer_id.in_(customer_ids), _PREFERENCE_EVENT.c.source == SOURCE)
        .order_by(_PREFERENCE_EVENT.c.id)
    )
    said: dict[int, dict[str, Any]] = {}
    for customer_id, changes in session.execute(query):
        said.setdefault(customer_id, {}).update(changes)
    return said


def _write_preferences(
    session: Session, rows: list[ValidRow], ids: dict[str, int], now: datetime
) -> set[int]:
    """Applies the preferences the file states where they differ from what the import said last.

    A value the import said before is left alone, whatever the customer chose since. A new
    value is recorded in the audit trail even when the stored one already matches, so the next
    import knows what this source says.
    """
    wanted = {ids[r.external_id]: r.preferences for r in rows if r.preferences}
    if not wanted:
        return set()
    columns = [_PREFERENCE.c.customer_id, *(_PREFERENCE.c[c] for c in PREFERENCE_COLUMNS)]
    query = select(*columns).where(_PREFERENCE.c.customer_id.in_(list(wanted)))
    stored = {m["customer_id"]: m for m in session.execute(query).mappings()}
    said = _preferences_said(session, list(wanted))
    writes: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for customer_id, prefs in wanted.items():
        before = said.get(customer_id, {})
        news = {k: v for k, v in prefs.items() if k not in before or before[k] != v}
        if not news:
            continue
        events.append({"customer_id": customer_id, "changes": news, "source": SOURCE, "created_at": now})
        old = stored.get(customer_id)
        base = _PREFERENCE_DEFAULTS if old is None else {c: old[c] for c in PREFERENCE_COLUMNS}
        if any(base[k] != v for k, v in news.items()):
            writes.append({"customer_id": customer_id, **base, **news, "updated_at": now})
    if writes:
        _upsert(session, _PREFERENCE, "customer_id", writes, [*PREFERENCE_COLUMNS, "updated_at"])
    if events:
        session.execute(insert(_PREFERENCE_EVENT), events)
    return {e["customer_id"] for e in events}
