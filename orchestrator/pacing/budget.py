"""The shared rate budget: slots of every lane, taken atomically in the database.

Each rate has one ``rate_budget`` row holding ``next_free``, the time from which its lane is free
(a virtual-scheduling token bucket, GCRA). Taking ``u`` units locks the rows of every rate the
messages wait for (PostgreSQL ``SELECT ... FOR UPDATE`` in name order; SQLite's ``BEGIN IMMEDIATE``
serialises writers), finds the first moment all of them are free, and moves each ``next_free`` on by
``u / rate``. So any number of processes and machines sharing the database share one budget, with
no server of our own. A taker is told *when* its units may go and sleeps until then; a slot further
away than the caller will wait is not taken (the messages are deferred to it instead).

Urgent traffic marks its channel's row (``urgent_until``); bulk traffic on that channel takes
nothing until the mark runs out, so a running campaign yields between batches. A provider's 429
halves the lane's share of its declared rate (``factor``) and pauses it for ``retry_after``; the
share grows back by a tenth of the rate per second without 429s (AIMD).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from orchestrator.db import is_sqlite, read_scope, session_scope
from orchestrator.models import RateBudget, table_of
from orchestrator.policy.rates import RateRule

BUDGET = table_of(RateBudget)
MIN_FACTOR = 0.05
DECREASE = 0.5
INCREASE_PER_SECOND = 0.1
URGENT_HOLD_SECONDS = 1.0  # how long after its last slot urgent traffic keeps bulk traffic off a lane
DEFAULT_PAUSE_SECONDS = 1.0  # a 429 without retry_after


@dataclass(frozen=True)
class Demand:
    rule: RateRule
    units: float


@dataclass(frozen=True)
class Slot:
    """The answer to ``take``. ``at``: when the units may go (taken), or ``None`` when the first free
    moment, ``free_at``, is further away than the caller would wait (nothing taken). ``held_by``
    names the rate (or ``urgent``) that sets ``free_at``."""

    at: float | None
    free_at: float
    held_by: str | None
    per_unit: float  # seconds per unit of the slowest rate now (to spread deferred messages)


def take(demands: Sequence[Demand], *, channel: str, urgent: bool, max_wait: float,
         now: float | None = None, url: str | None = None) -> Slot:
    """Takes the units of every demand at the first moment all their rates allow, if within ``max_wait``."""
    names = sorted({d.rule.name for d in demands} | {channel})
    with session_scope(url) as session:
        rows = _lock(session, names)
        now = time.time() if now is None else now
        free_at, held_by, per_unit = now, None, 0.0
        signal = rows[channel]
        if not urgent and signal.urgent_until > now:
            free_at, held_by = signal.urgent_until, "urgent"
        for demand in demands:
            row = rows[demand.rule.name]
            rate = demand.rule.per_second * _factor(row, now)
            tolerance = (demand.rule.burst - demand.units) / rate if demand.units < demand.rule.burst else 0.0
            start = max(now, row.paused_until, row.next_free - tolerance)
            hours = demand.rule.business_hours
            if hours is not None:
                start = hours.next_open(_as_datetime(start)).timestamp()
            per_unit = max(per_unit, 1.0 / rate)
            if start > free_at:
                free_at, held_by = start, demand.rule.name
        if free_at - now > max_wait:
            return Slot(None, free_at, held_by, per_unit)
        last = free_at
        for demand in demands:
            row = rows[demand.rule.name]
            factor = _factor(row, now)
            values: dict[str, float | int] = {
                "next_free": max(row.next_free, free_at) + demand.units / (demand.rule.per_second * factor)}
            if factor != row.factor:
                values.update(factor=factor, adjusted_at=now)
            _write(session, demand.rule.name, values)
            last = max(last, values["next_free"])
        if urgent:
            _write(session, channel, {"urgent_until": max(signal.urgent_until, last + URGENT_HOLD_SECONDS)})
        return Slot(free_at, free_at, held_by, per_unit)


def slow_down(rule_names: Iterable[str], retry_after: float | None, *, now: float | None = None,
              url: str | None = None) -> None:
    """A provider answered 429 on these lanes: halve their share (at most once a second) and pause
    them for ``retry_after`` seconds."""
    names = sorted(set(rule_names))
    if not names:
        return
    with session_scope(url) as session:
        rows = _lock(session, names)
        now = time.time() if now is None else now
        pause = now + (retry_after if retry_after is not None else DEFAULT_PAUSE_SECONDS)
        for name in names:
            row = rows[name]
            values: dict[str, float | int] = {"paused_until": max(row.paused_until, pause),
                                              "rate_limited": row.rate_limited + 1}
            if now - row.adjusted_at >= 1.0:
                values.update(factor=max(MIN_FACTOR, _factor(row, now) * DECREASE), adjusted_at=now)
            _write(session, name, values)


def hold(name: str, until: float, *, url: str | None = None) -> None:
    """Marks the row ``name`` held by urgent work until ``until`` (a later mark is kept); ``until`` in
    the past clears it."""
    with session_scope(url) as session:
        row = _lock(session, [name])[name]
        now = time.time()
        _write(session, name, {"urgent_until": max(row.urgent_until, until) if until > now else until})


def held_until(name: str, *, url: str | None = None) -> float:
    """Until when urgent work holds the row ``name`` (0 for a row never held): a read, no lock."""
    with read_scope(url) as session:
        value = session.execute(select(BUDGET.c.urgent_until).where(BUDGET.c.name == name)).scalar()
    return float(value or 0.0)


def lane_state(names: Iterable[str], url: str | None = None) -> dict[str, dict[str, float]]:
    """The budget rows (for ``plan``, reports and tests)."""
    with session_scope(url) as session:
        rows = session.execute(select(BUDGET).where(BUDGET.c.name.in_(list(names)))).all()
    return {r.name: {"next_free": r.next_free, "factor": r.factor, "paused_until": r.paused_until,
                     "urgent_until": r.urgent_until, "rate_limited": r.rate_limited} for r in rows}


# --- internals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    next_free: float
    factor: float
    paused_until: float
    urgent_until: float
    adjusted_at: float
    rate_limited: int = 0


def _lock(session: Session, names: list[str]) -> dict[str, _Row]:
    """The rows of ``names``, created if missing, locked until the transaction ends."""
    sqlite = is_sqlite(session.get_bind())
    insert = (sqlite_insert if sqlite else pg_insert)(BUDGET).values(
        [{"name": n, "next_free": 0.0, "factor": 1.0, "paused_until": 0.0, "urgent_until": 0.0,
          "adjusted_at": 0.0, "rate_limited": 0} for n in names]
    ).on_conflict_do_nothing(index_elements=["name"])
    session.execute(insert)
    query = select(BUDGET).where(BUDGET.c.name.in_(names)).order_by(BUDGET.c.name)
    if not sqlite:
        query = query.with_for_update()
    return {r.name: _Row(r.next_free, r.factor, r.paused_until, r.urgent_until, r.adjusted_at,
                         rate_limited=r.rate_limited)
            for r in session.execute(query)}


def _write(session: Session, name: str, values: dict[str, float | int]) -> None:
    session.execute(update(BUDGET).where(BUDGET.c.name == name).values(**values))


def _factor(row: _Row, now: float) -> float:
    """The share of the declared rate in force: grows back additively since the last change."""
    if row.factor >= 1.0:
        return 1.0
    return min(1.0, row.factor + INCREASE_PER_SECOND * max(0.0, now - row.adjusted_at))


def _as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
