"""One report of a slice of the ledger: funnel, rates, breakdowns, variants and health flags.

The result is plain JSON-ready data with stable top-level keys (``funnel``, ``rates``,
``breakdown``, ``variants``, ``flags``): the CLI prints it, the Prefect flow publishes it,
the plot draws it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from orchestrator.models import MessageStatus, utcnow
from orchestrator.reports import funnel
from orchestrator.reports.rates import HEALTH_DAYS, health_flags, rates
from orchestrator.reports.slices import ReportSlice, slice_condition
from orchestrator.reports.surveys import survey_section
from orchestrator.reports.variants import compare_variants

NOTES = (
    "Counts are messages: a message opened or clicked several times counts once.",
    "Machine opens (privacy proxies such as Apple Mail Privacy Protection, SendGrid's "
    "sg_machine_open) are counted apart as machine_opened and left out of opened and the open rate.",
    "sent: the provider accepted the message; delivered: the provider or an open/click confirmed it.",
    f"A reply is a customer's answer on the message's channel within {funnel.REPLY_WINDOW.days} days "
    "after it, counted for the latest such message.",
    "A deferred or suppressed message may carry several reasons.",
    f"Flags: sender health per channel over the last {HEALTH_DAYS} days of all traffic, not only this slice.",
)


def _breakdown(groups: list[dict[str, Any]], dims: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Per dimension, the groups' counts summed by that dimension's value, largest first."""
    result: dict[str, list[dict[str, Any]]] = {}
    for dim in dims:
        by_value: dict[str, list[dict[str, Any]]] = {}
        for g in groups:
            by_value.setdefault(str(g["group"][dim]), []).append(g)
        rows = []
        for value, members in by_value.items():
            counts = funnel.sum_stages(members)
            rows.append({"value": value, "counts": counts, "rates": rates(counts)})
        result[dim] = sorted(rows, key=lambda r: (-r["counts"]["messages"], r["value"]))
    return result


def sender_health(session: Session, now: datetime | None = None) -> list[dict[str, Any]]:
    """The health flags per channel over the last HEALTH_DAYS days of sent messages."""
    return health_flags(funnel.channel_health(session, (now or utcnow()) - timedelta(days=HEALTH_DAYS)))


def build_report(session: Session, part: ReportSlice, now: datetime | None = None) -> dict[str, Any]:
    """The report of ``part``; raises UnknownSlice for a campaign or incident that does not exist."""
    now = now or utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # A dozen short queries: compiling each with JIT cost ~0.2 s apiece, more than it saved.
        session.execute(text("SET LOCAL jit = off"))
    where = slice_condition(session, part)
    dims = funnel.dimensions()
    groups = funnel.grouped_counts(session, where, dims)
    totals = funnel.sum_stages(groups)
    counts = {"audience": funnel.audience(session, where), **totals,
              **funnel.phone_tasks(session, where)}
    breakdown = _breakdown(groups, list(dims))
    return {
        "slice": part.as_dict(),
        "generated_at": now.isoformat(),
        "funnel": {**counts,
                   "deferred_by_reason": funnel.reasons(session, where, MessageStatus.deferred),
                   "suppressed_by_reason": funnel.reasons(session, where, MessageStatus.suppressed)},
        "rates": rates(totals),
        "timing": {"send_to_delivered": funnel.delivery_times(session, where)},
        "breakdown": breakdown,
        "variants": compare_variants(session, where, part, breakdown.get("variant")),
        "surveys": survey_section(session, where),
        "flags": sender_health(session, now),
        "notes": list(NOTES),
    }
