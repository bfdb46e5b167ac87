"""Lifecycle flows: loyalty recognition every day, complaint acknowledgements, surveys after resolution.

All through the same policy as everything else, so caps, quiet hours and consent hold:

- ``lifecycle_daily``: customers hear from us at 10:00 their time on their customer-since
  anniversary, once per customer per year (which anniversaries a day's run takes, and what
  they get: ``orchestrator.lifecycle``).
- ``complaint_acknowledgement``: fast and empathetic; premium customers also get a call
  (a phone task with the topic's SLA).
- ``complaint_resolved``: a short feedback survey, once per complaint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any, Literal

from prefect import flow, get_run_logger

from flows.common import Progress, install_prefect_redaction, tag_flow_run, thread_task_runner
from flows.pipeline import id_range, publish, run_pipeline
from orchestrator.ledger.summaries import ledger_summary
from orchestrator.lifecycle import (
    PREMIUM_TIERS,
    anniversary_chunks,
    customer_and_tier,
    recognition,
    response_due,
)
from orchestrator.models import utcnow
from orchestrator.policy import Intent
from orchestrator.surveys import check_scale

# --- loyalty ---------------------------------------------------------------------------------


@flow(
    name="lifecycle-daily",
    flow_run_name="lifecycle-daily-{day}",
    task_runner=thread_task_runner(max_workers=4),
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
    run = run_pipeline(chunks(), traffic="bulk", progress=None)  # bulk: urgent work goes first
    ledger = ledger_summary(dedupe_prefix="anniversary:", created_since=started)
    facts = {"day": day.isoformat(), "customers": run.customers}
    publish(f"lifecycle-daily-{day.isoformat()}", f"Loyalty recognition for {day.isoformat()}", facts, ledger,
            run)
    get_run_logger().info("%d anniversaries on %s", run.customers, day)
    return {"flow": "lifecycle-daily", "day": day.isoformat(), **run.as_dict(), "ledger": ledger.as_dict()}


# --- complaints ------------------------------------------------------------------------------


def _send_one_case(label: str, intents: list[Intent], title: str, key: str, facts: dict[str, Any]
                   ) -> dict[str, Any]:
    """Reserves and sends the few messages of one case (a complaint), then publishes its summary."""
    progress = Progress(f"{key}-progress", 1, description=title)
    run = run_pipeline([(label, intents)], progress=progress, window=1)
    ledger = ledger_summary(dedupe_prefix=intents[0].dedupe_key)
    publish(key, title, facts, ledger, run)
    return {**run.as_dict(), "ledger": ledger.as_dict()}


@flow(
    name="complaint-acknowledgement",
    flow_run_name="complaint-{complaint_id}",
    task_runner=thread_task_runner(max_workers=2),
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
    cid, tier = customer_and_tier(customer)
    key = f"complaint:{complaint_id}"
    data = {"case_reference": complaint_id, "summary": summary, "response_by": response_due(response_hours)}
    intents = [Intent(customer_id=cid, topic="support", template="complaint_acknowledgement", dedupe_key=key,
                      data=data, tone="empathetic")]
    if tier in PREMIUM_TIERS:  # a person calls as well: its own row, so caps and quiet hours apply
        intents.append(Intent(customer_id=cid, topic="support", template="complaint_acknowledgement",
                              dedupe_key=f"{key}:call", data=data, tone="empathetic", channels=["phone"]))
    tag_flow_run("support", "complaint")
    out = _send_one_case(complaint_id, intents, f"Complaint {complaint_id} acknowledged",
                         f"complaint-{complaint_id}",
                         {"complaint": complaint_id, "tier": tier, "call": tier in PREMIUM_TIERS})
    return {"flow": "complaint-acknowledgement", "complaint_id": complaint_id, "call": tier in PREMIUM_TIERS,
            **out}


@flow(
    name="complaint-resolved",
    flow_run_name="complaint-{complaint_id}-resolved",
    task_runner=thread_task_runner(max_workers=2),
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
    cid, _tier = customer_and_tier(customer)
    key = f"survey:complaint:{complaint_id}"
    intent = Intent(customer_id=cid, topic="feedback", template="feedback_survey", dedupe_key=key,
                    data={"survey_subject": survey_subject, "survey_url": survey_url, "minutes": minutes,
                          "survey_scale": check_scale(survey_scale)})
    tag_flow_run("feedback", "complaint")
    out = _send_one_case(complaint_id, [intent], f"Survey for complaint {complaint_id}",
                         f"survey-{complaint_id}", {"complaint": complaint_id})
    return {"flow": "complaint-resolved", "complaint_id": complaint_id, **out}
