"""Experiment variants side by side, against the holdout, with a winner only when the data says so.

Per variant (``message.variant``, see ``orchestrator.experiments``): the customers assigned,
delivered, clicks, unsubscribes, replies, survey scores and goal conversions, each rate with its
Wilson 95% interval. Clicks, unsubscribes and replies are over delivered messages; conversions
are over the customers assigned (everyone the variant was meant for, reached or not), which is
what makes them comparable with the holdout, who were reached by nobody.

A goal conversion is the campaign's goal event done by the customer within the attribution
window: after their send (or, if nothing was sent to them, after the campaign's start); for the
holdout, after the campaign's start. Lift over the holdout and the comparison between variants
use the two-proportion test; the best variant is named the winner only when it differs
significantly from every other one (Bonferroni-corrected), otherwise the verdict is
"not enough data".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from orchestrator.experiments import HOLDOUT
from orchestrator.models import Campaign, ConversionEvent, table_of
from orchestrator.reports.funnel import NONE_LABEL, M
from orchestrator.reports.slices import ReportSlice
from orchestrator.reports.stats import ALPHA, proportion, two_proportion_p
from orchestrator.reports.surveys import score_counts, scores

CV = table_of(ConversionEvent)
NO_VARIANTS = "No experiment variants in this slice: the ledger records no variant for its messages."
NOT_ENOUGH = "not enough data"


def _customers(session: Session, where: ColumnElement[bool]) -> dict[str, int]:
    query = (select(M.c.variant, func.count(func.distinct(M.c.customer_id)))
             .where(where, M.c.variant.is_not(None)).group_by(M.c.variant))
    return {str(v): int(n) for v, n in session.execute(query).all()}


def _goal(session: Session, part: ReportSlice) -> Campaign | None:
    if part.campaign is None:
        return None
    campaign = session.scalars(select(Campaign).where(col(Campaign.name) == part.campaign)).first()
    return campaign if campaign is not None and campaign.goal_event else None


def _within(event_time, start, days: int, dialect: str) -> ColumnElement[bool]:
    if dialect == "sqlite":  # datetimes are text there: compare as Julian days
        return and_(func.julianday(event_time) >= func.julianday(start),
                    func.julianday(event_time) < func.julianday(start) + days)
    return and_(event_time >= start, event_time < start + literal(timedelta(days=days)))


def _conversions(session: Session, where: ColumnElement[bool], campaign: Campaign) -> dict[str, int]:
    """Customers per variant who did the goal event within their attribution window."""
    started = literal(campaign.created_at, type_=M.c.sent_at.type)
    start = case((M.c.variant == HOLDOUT, started), else_=func.coalesce(M.c.sent_at, started))
    dialect = session.get_bind().dialect.name
    query = (select(M.c.variant, func.count(func.distinct(M.c.customer_id)))
             .select_from(M.join(CV, and_(CV.c.customer_id == M.c.customer_id,
                                          CV.c.name == campaign.goal_event)))
             .where(where, M.c.variant.is_not(None),
                    _within(CV.c.occurred_at, start, campaign.attribution_days, dialect))
             .group_by(M.c.variant))
    return {str(v): int(n) for v, n in session.execute(query).all()}


def _lift(arm: dict[str, Any], holdout: dict[str, Any]) -> dict[str, Any] | None:
    mine, theirs = arm["rates"]["conversion_rate"], holdout["rates"]["conversion_rate"]
    if mine is None or theirs is None or mine["value"] is None or theirs["value"] is None:
        return None
    p = two_proportion_p(mine["numerator"], mine["denominator"], theirs["numerator"], theirs["denominator"])
    return {"absolute": round(mine["value"] - theirs["value"], 6),
            "relative": round(mine["value"] / theirs["value"] - 1, 6) if theirs["value"] else None,
            "p_value": p, "significant": p is not None and p < ALPHA}


def _verdict(candidates: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The best candidate on ``metric``, named winner only if significantly ahead of every other."""
    rated = [c for c in candidates if c["rates"].get(metric) and c["rates"][metric]["value"] is not None]
    if len(rated) < 2 or len(rated) < len(candidates):
        return {"metric": metric, "winner": None, "verdict": NOT_ENOUGH, "tests": [],
                "reason": "fewer than two groups with a measurable rate"}
    best = max(rated, key=lambda c: c["rates"][metric]["value"])
    alpha = ALPHA / (len(rated) - 1)
    tests = []
    for other in rated:
        if other is best:
            continue
        a, b = best["rates"][metric], other["rates"][metric]
        p = two_proportion_p(a["numerator"], a["denominator"], b["numerator"], b["denominator"])
        tests.append({"against": other["variant"], "p_value": p, "significant": p is not None and p < alpha})
    won = all(t["significant"] for t in tests)
    return {"metric": metric, "winner": best["variant"] if won else None,
            "verdict": f"{best['variant']} wins" if won else NOT_ENOUGH, "alpha": round(alpha, 6),
            "tests": tests}


def compare_variants(session: Session, where: ColumnElement[bool], part: ReportSlice,
                     by_variant: list[dict[str, Any]] | None) -> dict[str, Any]:
    rows = [r for r in by_variant or [] if r["value"] != NONE_LABEL]
    if not rows:
        return {"rows": [], "winner": None, "verdict": None, "note": NO_VARIANTS}
    customers = _customers(session, where)
    campaign = _goal(session, part)
    converted = _conversions(session, where, campaign) if campaign is not None else {}
    answers = score_counts(session, where, M.c.variant)
    table = []
    for r in rows:
        name, counts, assigned = r["value"], r["counts"], customers.get(r["value"], 0)
        delivered = counts["delivered"]
        table.append({
            "variant": name, "customers": assigned, "delivered": delivered, "clicked": counts["clicked"],
            "unsubscribed": counts["unsubscribed"], "replies": counts["replies"],
            "conversions": converted.get(name, 0) if campaign is not None else None,
            "rates": {
                "click_rate": proportion(counts["clicked"], delivered),
                "unsubscribe_rate": proportion(counts["unsubscribed"], delivered),
                "reply_rate": proportion(counts["replies"], delivered),
                "conversion_rate": (proportion(converted.get(name, 0), assigned)
                                    if campaign is not None else None),
            },
            **scores(answers.get(name, {})),
        })
    holdout = next((t for t in table if t["variant"] == HOLDOUT), None)
    arms = [t for t in table if t["variant"] != HOLDOUT]
    for arm in arms:
        arm["lift_over_holdout"] = None if holdout is None or campaign is None else _lift(arm, holdout)
    if campaign is not None:
        result = _verdict(arms + ([holdout] if holdout is not None else []), "conversion_rate")
        goal = {"event": campaign.goal_event, "attribution_days": campaign.attribution_days,
                "window": f"{campaign.attribution_days} days after each send; the holdout: "
                          f"{campaign.attribution_days} days from the campaign's start"}
    else:
        result, goal = _verdict(arms, "click_rate"), None
    note = ("Clicks, unsubscribes and replies are rates over delivered; conversions over the customers "
            f"assigned. Intervals: Wilson 95%. A winner is named only when the two-proportion test finds "
            f"it ahead of every other group at p < {ALPHA:g} (Bonferroni-corrected).")
    return {"rows": table, "goal": goal, **result, "note": note}
