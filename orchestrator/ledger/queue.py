"""The ledger as a queue: claiming due messages for dispatch, and counting them.

A claim is one transaction that turns up to N due rows (``planned``, or ``deferred`` with
``send_at <= now``) into ``sending`` with ``attempts + 1``. PostgreSQL takes them with
``FOR UPDATE SKIP LOCKED`` so several workers share the queue; on SQLite the engine's
``BEGIN IMMEDIATE`` serialises claims. The claim is committed BEFORE any provider call: a crash
after it leaves ``sending`` rows, which ``reconcile.reconcile_stuck`` flags instead of re-sending.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from sqlalchemy import String, and_, func, or_, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import Engine

from orchestrator.db import get_engine, is_sqlite, member_of, session_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus, utcnow


class ClaimedMessage(Protocol):
    """A claimed ledger row: a plain Core row read like the model (ORM objects cost twice as much
    to load). Unlike ``Message``, its id is always set."""

    @property
    def id(self) -> int: ...
    @property
    def dedupe_key(self) -> str: ...
    @property
    def customer_id(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def tone(self) -> str | None: ...
    @property
    def template(self) -> str: ...
    @property
    def locale(self) -> str | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def send_at(self) -> datetime: ...
    @property
    def deadline(self) -> datetime | None: ...
    @property
    def reason_codes(self) -> list[str]: ...
    @property
    def reason_text(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...
    @property
    def campaign_id(self) -> int | None: ...
    @property
    def incident_id(self) -> int | None: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def provider_message_id(self) -> str | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def sent_at(self) -> datetime | None: ...


def claim_due(
    *,
    now: datetime,
    limit: int,
    channels: Iterable[str] | None = None,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    message_ids: Iterable[int] | None = None,
    url: str | None = None,
    due_by: datetime | None = None,
) -> list[ClaimedMessage]:
    """Atomically moves up to ``limit`` due messages to ``sending`` (committed) and returns them,
    in id order. ``due_by`` (default ``now``): claims deferred messages due by then."""
    engine = get_engine(url)
    conditions = due_conditions(due_by or now, channels, campaign_id, incident_id, message_ids, engine)
    pick = (
        select(MESSAGE.c.id)
        .where(*conditions)
        .order_by(MESSAGE.c.priority.desc(), MESSAGE.c.send_at, MESSAGE.c.id)
        .limit(limit)
    )
    if not is_sqlite(engine):
        pick = pick.with_for_update(skip_locked=True)  # concurrent workers take disjoint rows
    claim = (
        update(MESSAGE)
        .where(MESSAGE.c.id.in_(pick.scalar_subquery()))
        .values(status=MessageStatus.sending, attempts=MESSAGE.c.attempts + 1, updated_at=now)
        .returning(*MESSAGE.c)  # the claimed rows as they are now: no second read
    )
    with session_scope(url) as session:
        rows = list(session.execute(claim))
    rows.sort(key=lambda row: row.id)
    return cast(list[ClaimedMessage], rows)


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
        *due_conditions(now or utcnow(), channels, campaign_id, incident_id, None, get_engine(url))
    )
    with session_scope(url) as session:
        return int(session.execute(query).scalar_one())


def waiting_later(*, now: datetime | None = None, channels: Iterable[str] | None = None,
                  url: str | None = None) -> tuple[int, datetime | None]:
    """Deferred messages not due yet: how many, and when the first of them falls due (UTC)."""
    query = select(func.count(), func.min(MESSAGE.c.send_at)).where(
        MESSAGE.c.status == MessageStatus.deferred, MESSAGE.c.send_at > (now or utcnow()))
    if channels is not None:
        query = query.where(MESSAGE.c.channel.in_(list(channels)))
    with session_scope(url) as session:
        waiting, first = session.execute(query).one()
    if first is not None and first.tzinfo is None:
        first = first.replace(tzinfo=UTC)  # SQLite keeps the ledger's UTC times naive
    return int(waiting), first


def due_conditions(
    now: datetime,
    channels: Iterable[str] | None,
    campaign_id: int | None,
    incident_id: int | None,
    message_ids: Iterable[int] | None,
    engine: Engine,
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
        conditions.append(member_of(engine, MESSAGE.c.id, message_ids))
    return conditions


def last_waiting_at(reason: str, *, after: datetime, channel: str | None = None,
                    url: str | None = None) -> datetime | None:
    """When the last message now ``deferred`` for ``reason`` (a code such as ``pace:sms``) is
    expected to go, if after ``after``: the end of the queue a newly waiting message joins."""
    query = select(func.max(MESSAGE.c.send_at)).where(
        MESSAGE.c.status == MessageStatus.deferred, MESSAGE.c.send_at > after,
        sql_cast(MESSAGE.c.reason_codes, String).like(f'%"{reason}"%'),
    )
    if channel is not None:
        query = query.where(MESSAGE.c.channel == channel)
    with session_scope(url) as session:
        return session.execute(query).scalar_one_or_none()
