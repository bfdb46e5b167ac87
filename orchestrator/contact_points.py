"""Where each customer is reached on each installed channel.

A channel's address kind (its ``ChannelSpec.address``) says what an address is. Three kinds
live on the customer row, because they are also who the customer is (imports and inbound
webhooks match customers by them): ``email``, ``phone`` (shared by SMS and calls) and
``x_user_id``. Every other kind is a ``contact_point`` row per customer and channel, with
whether it is verified and where it came from. Everything that needs an address asks here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, exists, func, select
from sqlalchemy.engine import Row
from sqlmodel import Session, col

from channels.channel_set import channel_spec, installed_channels
from orchestrator.db import member_of
from orchestrator.models import ContactPoint, Customer, as_utc, table_of, utcnow

# Address kind -> the customer column that holds it.
PROFILE_COLUMNS: dict[str, str] = {"email": "email", "phone": "phone", "x_user_id": "x_user_id"}

_CUSTOMER: Table = table_of(Customer)
_POINT: Table = table_of(ContactPoint)


def profile_column(channel: str) -> str | None:
    """The customer column holding ``channel``'s addresses, or None for a contact-point channel."""
    return PROFILE_COLUMNS.get(channel_spec(channel).address.name)


def channel_columns() -> dict[str, str | None]:
    """Every installed channel -> its customer column (None: stored as contact points)."""
    return {name: PROFILE_COLUMNS.get(spec.address.name) for name, spec in installed_channels().items()}


def normalise_address(channel: str, raw: str, region: str) -> str:
    """The stored form of ``raw`` on ``channel``, by the channel's own rules; ValueError if invalid."""
    return channel_spec(channel).address.normalise(raw.strip(), region)


def addresses_of(
    session: Session, customers: Iterable[Mapping[str, Any] | Any], channels: Iterable[str] | None = None
) -> dict[int, dict[str, str | None]]:
    """Customer id -> channel -> address, for customer rows already loaded (mappings or objects
    with the profile columns). Contact points cost one query, only if a wanted channel needs them."""
    return reach_of(session, customers, channels).addresses


@dataclass(frozen=True)
class Reach:
    addresses: dict[int, dict[str, str | None]]  # customer id -> channel -> address
    # (customer, conversational contact-point channel) -> when the customer last wrote on it
    last_inbound: dict[tuple[int, str], datetime]


def reach_of(
    session: Session, customers: Iterable[Mapping[str, Any] | Any], channels: Iterable[str] | None = None
) -> Reach:
    """``addresses_of``, with when each customer last wrote on the conversational channels among
    them (their reply windows), both from the one contact-point query."""
    columns = channel_columns()
    wanted = [ch for ch in (channels if channels is not None else columns) if ch in columns]
    out: dict[int, dict[str, str | None]] = {}
    for row in customers:
        if isinstance(row, Row):  # a database row: its mapping reads faster than its attributes
            row = row._mapping
        get: Any = row.get if isinstance(row, Mapping) else (lambda name, r=row: getattr(r, name, None))
        cid = int(get("id"))
        out[cid] = {ch: (get(col) or None) for ch in wanted if (col := columns[ch]) is not None}
    inbound: dict[tuple[int, str], datetime] = {}
    points = [ch for ch in wanted if columns[ch] is None]
    if points and out:
        specs = installed_channels()
        conversational = {ch for ch in points if specs[ch].conversational}
        p = _POINT.c
        query = select(p.customer_id, p.channel, p.address, p.last_inbound_at).where(
            member_of(session, p.customer_id, out), p.channel.in_(points))
        for cid, channel, address, at in session.connection().execute(query):
            out[cid][channel] = address
            if at is not None and channel in conversational:
                inbound[(cid, channel)] = as_utc(at)
    return Reach(out, inbound)


def contact_points(
    session: Session, customer_ids: list[int], channels: list[str] | None = None
) -> list[tuple[int, str, str]]:
    p = _POINT.c
    query = select(p.customer_id, p.channel, p.address).where(member_of(session, p.customer_id, customer_ids))
    if channels is not None:
        query = query.where(p.channel.in_(channels))
    return [(row[0], row[1], row[2]) for row in session.connection().execute(query)]


def point_rows(session: Session, customer_id: int) -> list[ContactPoint]:
    return list(session.scalars(select(ContactPoint).where(col(ContactPoint.customer_id) == customer_id)
                                .order_by(col(ContactPoint.channel))))


def set_contact_point(
    session: Session, customer_id: int, channel: str, address: str, source: str, *,
    verified: bool | None = None, now: datetime | None = None,
) -> bool:
    """Stores (or replaces) the customer's address on a contact-point channel; False if unchanged."""
    now = now or utcnow()
    point = session.scalars(select(ContactPoint).where(
        col(ContactPoint.customer_id) == customer_id, col(ContactPoint.channel) == channel)).first()
    if point is None:
        session.add(ContactPoint(customer_id=customer_id, channel=channel, address=address,
                                 verified=bool(verified), source=source, created_at=now, updated_at=now))
        return True
    if point.address == address and (verified is None or point.verified == verified):
        return False
    if point.address != address:
        point.verified = bool(verified)
    elif verified is not None:
        point.verified = verified
    point.address, point.source, point.updated_at = address, source, now
    session.add(point)
    return True


def customers_with_address(session: Session, channel: str, address: str) -> list[int]:
    """Customers reached at ``address`` on ``channel`` (inbound messages find their sender)."""
    column, address = profile_column(channel), address.strip()
    if column == "email":  # providers report the address in their own case
        query = select(_CUSTOMER.c.id).where(func.lower(_CUSTOMER.c.email) == address.lower())
    elif column is not None:
        query = select(_CUSTOMER.c.id).where(_CUSTOMER.c[column] == address)
    else:
        p = _POINT.c
        query = select(p.customer_id).where(p.channel == channel, p.address == address)
    return list(session.scalars(query.order_by(query.selected_columns[0])))


def record_inbound(session: Session, channel: str, address: str, at: datetime | None = None) -> list[int]:
    """A customer wrote to us from ``address`` on a contact-point channel: the address is theirs
    (verified) and, on conversational channels, the reply window opens. Returns their ids."""
    at = at or utcnow()
    if profile_column(channel) is not None:
        return customers_with_address(session, channel, address)
    points = list(session.scalars(select(ContactPoint).where(
        col(ContactPoint.channel) == channel, col(ContactPoint.address) == address)))
    for point in points:
        if point.last_inbound_at is None or as_utc(point.last_inbound_at) < at:
            point.last_inbound_at = at
        point.verified = True
        point.updated_at = utcnow()
        session.add(point)
    return sorted(p.customer_id for p in points)




def reachable(channel: str) -> ColumnElement[bool]:
    """SQL: the customer row has an address on ``channel`` (segments' ``has:``)."""
    column = profile_column(channel)
    if column is not None:
        col = _CUSTOMER.c[column]
        return and_(col.is_not(None), col != "")
    p = _POINT.c
    return exists().where(p.customer_id == _CUSTOMER.c.id, p.channel == channel, p.address != "")
