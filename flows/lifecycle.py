"""Lifecycle messages: loyalty recognition every day, complaint acknowledgements, surveys after resolution.

All through the same policy as everything else, so caps, quiet hours and consent hold:

- ``lifecycle_daily``: customers hear from us at 10:00 their time on their customer-since
  anniversary (Feb 29 customers on Feb 28 in other years). The run of day D (06:00 UTC) takes
  every anniversary whose 10:00 local falls in the 24 hours from D 06:00 UTC: in Tokyo or
  Kathmandu, where 10:00 on D has already passed, that is tomorrow's, sent at 10:00 tomorrow
  local, so each zone from UTC-12 to UTC+14 hears on the day itself. Milestone years get the
  ``loyalty_milestone`` message, the others ``anniversary``. One per customer per year
  (dedupe key ``anniversary:<year>``), so running the day twice sends nothing new.
- ``complaint_acknowledgement``: fast and empathetic; premium customers also get a call
  (a phone task with the topic's SLA).
- ``complaint_resolved``: a short feedback survey, once per complaint.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import and_, extract, or_, select

from flows.common import Progress, install_prefect_redaction, tag_flow_run
from flows.pipeline import ShortReads, id_range, ledger_summary, publish, run_pipeline
from orchestrator.db import session_scope
from orchestrator.models import Customer, utcnow
from orchestrator.policy import Intent
from orchestrator.policy.explain import UnknownCustomer, find_customer_id
from orchestrator.policy.timing import local_to_utc, zone_for
from orchestrator.surveys import check_scale

MILESTONE_YEARS = (1, 5, 10, 15, 20, 25, 30)
LOYALTY_SEND_TIME = "10:00"  # the customer's local time
DAILY_RUN_UTC = time(6, 0)  # lifecycle-daily's schedule in prefect.yaml
PREMIUM_TIERS = ("premium",)

_customer = Customer.__table__  # type: ignore[attr-defined]


# --- loyalty ---------------------------------------------------------------------------------


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
    reads, last = ShortReads(), 0
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


@flow(
    name="lifecycle-daily",
    flow_run_name="lifecycle-daily-{day}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    description="Recognises customer-since anniversaries and milestone years, once a year per customer.",
)
def lifecycle_daily(
    day: date | None = None,
    gift: str = "a month of Pro, on us",
    reward: str = "a free upgrade to the next plan for three months",
    chunk_size: int = 1000,
) -> dict[str, Any]:
    """Reserves and sends today's recognitions (deferred to 10:00 local where that is later)."""
    install_prefect_redaction()
    day = day or utcnow().date()
    started = utcnow()

    def chunks() -> Iterator[tuple[str, list[Intent]]]:
        for rows in anniversary_chunks(day, chunk_size):
            yield id_range([cid for cid, _, _ in rows]), [recognition(cid, since, local_day, gift, reward)
                                                          for cid, since, local_day in rows]

    tag_flow_run("loyalty", "lifecycle")
    run = run_pipeline(chunks(), progress=None)
    ledger = ledger_summary(dedupe_prefix="anniversary:", created_since=started)
    facts = {"day": day.isoformat(), "customers": run.customers}
    publish(f"lifecycle-daily-{day.isoformat()}", f"Loyalty recognition for {day.isoformat()}", facts, ledger,
            run)
    get_run_logger().info("%d anniversaries on %s", run.customers, day)
    return {"flow": "lifecycle-daily", "day": day.isoformat(), **run.as_dict(), "ledger": ledger.as_dict()}


# --- complaints ------------------------------------------------------------------------------


def _customer_id(customer: str) -> tuple[int, str]:
    """(id, tier) of a customer given by external id (or numeric id); ValueError if unknown."""
    with session_scope() as session:
        try:
            cid = find_customer_id(session, customer)
        except UnknownCustomer as exc:
            raise ValueError(str(exc)) from None
        query = select(_customer.c.tier).where(_customer.c.id == cid)
        tier = session.connection().execute(query).scalar_one()
    return cid, tier


def _single(label: str, intents: list[Intent], title: str, key: str, facts: dict[str, Any]) -> dict[str, Any]:
    progress = Progress(f"{key}-progress", 1, description=title)
    run = run_pipeline([(label, intents)], progress=progress, window=1)
    ledger = ledger_summary(dedupe_prefix=intents[0].dedupe_key)
    publish(key, title, facts, ledger, run)
    return {**run.as_dict(), "ledger": ledger.as_dict()}


def response_due(hours: int, now: datetime | None = None) -> str:
    return f"{(now or utcnow()) + timedelta(hours=hours):%a %d %b, %H:%M} UTC"


@flow(
    name="complaint-acknowledgement",
    flow_run_name="complaint-{complaint_id}",
    task_runner=ThreadPoolTaskRunner(max_workers=2),
    description="Acknowledges a complaint at once, empathetically; premium customers also get a call.",
)
def complaint_acknowledgement(
    customer: str,
    complaint_id: str,
    summary: str,
    response_hours: int = 48,
) -> dict[str, Any]:
    install_prefect_redaction()
    if not complaint_id.strip() or not summary.strip():
        raise ValueError("complaint_id and summary must not be empty")
    cid, tier = _customer_id(customer)
    key = f"complaint:{complaint_id}"
    data = {"case_reference": complaint_id, "summary": summary, "response_by": response_due(response_hours)}
    intents = [Intent(customer_id=cid, topic="support", template="complaint_acknowledgement", dedupe_key=key,
                      data=data, tone="empathetic")]
    if tier in PREMIUM_TIERS:  # a person calls as well: its own row, so caps and quiet hours apply
        intents.append(Intent(customer_id=cid, topic="support", template="complaint_acknowledgement",
                              dedupe_key=f"{key}:call", data=data, tone="empathetic", channels=["phone"]))
    tag_flow_run("support", "complaint")
    out = _single(complaint_id, intents, f"Complaint {complaint_id} acknowledged",
                  f"complaint-{complaint_id}",
                  {"complaint": complaint_id, "tier": tier, "call": tier in PREMIUM_TIERS})
    return {"flow": "complaint-acknowledgement", "complaint_id": complaint_id, "call": tier in PREMIUM_TIERS,
            **out}


@flow(
    name="complaint-resolved",
    flow_run_name="complaint-{complaint_id}-resolved",
    task_runner=ThreadPoolTaskRunner(max_workers=2),
    description="After a complaint is resolved, asks once for feedback with a short survey.",
)
def complaint_resolved(
    customer: str,
    complaint_id: str,
    survey_url: str,
    survey_subject: str = "how we handled your complaint",
    minutes: int = 2,
    survey_scale: Literal["csat", "nps"] = "csat",
) -> dict[str, Any]:
    """``survey_scale``: one-click answers in the message, CSAT 1-5 or NPS 0-10 (orchestrator.surveys)."""
    install_prefect_redaction()
    cid, _tier = _customer_id(customer)
    key = f"survey:complaint:{complaint_id}"
    intent = Intent(customer_id=cid, topic="feedback", template="feedback_survey", dedupe_key=key,
                    data={"survey_subject": survey_subject, "survey_url": survey_url, "minutes": minutes,
                          "survey_scale": check_scale(survey_scale)})
    tag_flow_run("feedback", "complaint")
    out = _single(complaint_id, [intent], f"Survey for complaint {complaint_id}", f"survey-{complaint_id}",
                  {"complaint": complaint_id})
    return {"flow": "complaint-resolved", "complaint_id": complaint_id, **out}
