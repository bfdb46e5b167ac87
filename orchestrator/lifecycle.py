"""Lifecycle messages' audience and content: customer-since anniversaries and complaint cases.

- Customers hear from us at 10:00 their time on their customer-since anniversary (Feb 29
  customers on Feb 28 in other years). The run of day D (06:00 UTC) takes every anniversary whose
  10:00 local falls in the 24 hours from D 06:00 UTC: in Tokyo or Kathmandu, where 10:00 on D has
  already passed, that is tomorrow's, sent at 10:00 tomorrow local, so each zone from UTC-12 to
  UTC+14 hears on the day itself. Milestone years get the ``loyalty_milestone`` message, the
  others ``anniversary``. One per customer per year (dedupe key ``anniversary:<year>``), so
  running the day twice sends nothing new.
- A complaint names its customer by external id (or numeric id); premium tiers also get a call.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, extract, or_, select

from orchestrator.db import ShortTransactionReader, session_scope
from orchestrator.models import Customer, utcnow
from orchestrator.policy import Intent
from orchestrator.policy.explain import UnknownCustomer, find_customer_id
from orchestrator.policy.timing import local_to_utc, zone_for

MILESTONE_YEARS = (1, 5, 10, 15, 20, 25, 30)
LOYALTY_SEND_TIME = "10:00"  # the customer's local time
DAILY_RUN_UTC = time(6, 0)  # lifecycle-daily's schedule in prefect.yaml
PREMIUM_TIERS = ("premium",)

_customer = Customer.metadata.tables[Customer.__tablename__]


def anniversary_condition(day: date) -> Any:
    """Customers who joined on this month and day at least a year before ``day``.

    On Feb 28 of a non-leap year, those who joined on Feb 29 celebrate too.
    """
    since = _customer.c.customer_since
    same_day = and_(extract("month", since) == day.month, extract("day", since) == day.day)
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        same_day = or_(same_day, and_(extract("month", since) == 2, extract("day", since) == 29))
    return and_(since.is_not(None), since <= date(day.year - 1, 12, 31), same_day)


def celebrates(since: date, day: date) -> bool:
    """``anniversary_condition`` for one customer, in Python."""
    if since.year >= day.year:
        return False
    if (since.month, since.day) == (day.month, day.day):
        return True
    return (since.month, since.day, day.month, day.day) == (2, 29, 2, 28) and not calendar.isleap(day.year)


def anniversary_for_run(since: date, timezone: str | None, day: date) -> date | None:
    """The anniversary the run of ``day`` recognises for this customer, or None.

    The one whose 10:00 local falls in the 24 hours from ``day`` at 06:00 UTC: the local
    date may be the day before ``day`` (west), ``day`` or the day after (east of UTC+4).
    """
    start = datetime.combine(day, DAILY_RUN_UTC, UTC)
    zone, clock = zone_for(timezone), time.fromisoformat(LOYALTY_SEND_TIME)
    for local_day in (day - timedelta(days=1), day, day + timedelta(days=1)):
        at = local_to_utc(local_day, clock, zone)
        if celebrates(since, local_day) and start <= at < start + timedelta(days=1):
            return local_day
    return None


def anniversary_chunks(day: date, chunk_size: int) -> Iterator[list[tuple[int, date, date]]]:
    """(customer id, customer since, anniversary) of the run's anniversaries, a chunk at a time."""
    c = _customer.c
    candidates = or_(*(anniversary_condition(day + timedelta(days=n)) for n in (-1, 0, 1)))
    reads, last = ShortTransactionReader(), 0
    while True:
        rows = list(reads.execute(
            select(c.id, c.customer_since, c.timezone).where(candidates, c.id > last)
            .order_by(c.id).limit(chunk_size)
        ))
        due = [(r.id, r.customer_since, local_day) for r in rows
               if (local_day := anniversary_for_run(r.customer_since, r.timezone, day)) is not None]
        if due:
            yield due
        if len(rows) < chunk_size:
            return
        last = rows[-1].id


def recognition(customer_id: int, since: date, day: date, gift: str, reward: str) -> Intent:
    """The anniversary message (on ``day``, the customer's local date), or the milestone message."""
    years = day.year - since.year
    if years in MILESTONE_YEARS:
        unit = "year" if years == 1 else "years"
        template, data = "loyalty_milestone", {"milestone": f"{years} {unit} with us", "reward": reward,
                                               "years": years}
    else:
        template, data = "anniversary", {"gift": gift, "years": years}
    # 10:00 on that date in the customer's zone (an ISO time without offset is local): a run
    # that starts late still sends on the day, at once, rather than at 10:00 the day after.
    return Intent(customer_id=customer_id, topic="loyalty", template=template,
                  dedupe_key=f"anniversary:{day.year}", data=data,
                  send_time=f"{day.isoformat()}T{LOYALTY_SEND_TIME}")


def customer_and_tier(customer: str) -> tuple[int, str]:
    """(id, tier) of a customer given by external id (or numeric id); ValueError if unknown."""
    with session_scope() as session:
        try:
            cid = find_customer_id(session, customer)
        except UnknownCustomer as exc:
            raise ValueError(str(exc)) from None
        query = select(_customer.c.tier).where(_customer.c.id == cid)
        tier = session.connection().execute(query).scalar_one()
    return cid, tier


def response_due(hours: int, now: datetime | None = None) -> str:
    return f"{(now or utcnow()) + timedelta(hours=hours):%a %d %b, %H:%M} UTC"
