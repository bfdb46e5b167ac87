"""Survey scores of a slice: CSAT and NPS with their answer counts, per topic, incident, channel and tone.

An answer belongs to the survey message it answers (``customer_feedback.message_id``), so it is
in the slice when that message is. A customer who changed their answer counts once, with the
latest answer. CSAT is the share of answers 4 or 5 on the 1-5 scale (with its Wilson interval);
NPS is the percentage of promoters (9-10) minus the percentage of detractors (0-6).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from orchestrator.reports.funnel import NONE_LABEL, C, F, I, M
from orchestrator.reports.stats import proportion

NOTE = ("CSAT: share of answers 4 or 5 on the 1-5 scale; NPS: % promoters (9-10) minus % detractors (0-6); "
        "the latest answer of each customer to each survey counts.")
DIMENSIONS = {"topic": M.c.topic, "incident": I.c.incident_key, "channel": M.c.channel, "tone": M.c.tone}


def _sum(condition: ColumnElement[bool]):
    return cast(func.coalesce(func.sum(case((condition, 1), else_=0)), 0), Integer)


def score_counts(session: Session, where: ColumnElement[bool], group: ColumnElement[Any] | None = None
                 ) -> dict[Any, dict[str, dict[str, int]]]:
    """Per value of ``group`` (None: one group), per scale: answers, satisfied, promoters, detractors."""
    latest = (select(func.max(F.c.id).label("fid"))
              .where(F.c.score.is_not(None), F.c.message_id.is_not(None))
              .group_by(F.c.message_id).subquery("latest"))
    keys = [group] if group is not None else []
    query = (select(*[k.label("g") for k in keys], F.c.scale, func.count().label("answers"),
                    _sum(and_(F.c.scale == "csat", F.c.score >= 4)).label("satisfied"),
                    _sum(and_(F.c.scale == "nps", F.c.score >= 9)).label("promoters"),
                    _sum(and_(F.c.scale == "nps", F.c.score <= 6)).label("detractors"))
             .select_from(latest.join(F, F.c.id == latest.c.fid).join(M, M.c.id == F.c.message_id)
                          .outerjoin(C, C.c.id == M.c.campaign_id).outerjoin(I, I.c.id == M.c.incident_id))
             .where(where).group_by(*keys, F.c.scale))
    found: dict[Any, dict[str, dict[str, int]]] = {}
    for row in session.execute(query).mappings():
        found.setdefault(row["g"] if keys else "all", {})[row["scale"]] = {
            k: int(row[k]) for k in ("answers", "satisfied", "promoters", "detractors")}
    return found


def scores(by_scale: dict[str, dict[str, int]]) -> dict[str, Any]:
    """The CSAT and NPS figures of one group's counts (None for a scale nobody answered)."""
    csat = by_scale.get("csat")
    nps = by_scale.get("nps")
    return {
        "csat": None if not csat else {"answers": csat["answers"], "satisfied": csat["satisfied"],
                                       "csat": proportion(csat["satisfied"], csat["answers"])},
        "nps": None if not nps else {"answers": nps["answers"], "promoters": nps["promoters"],
                                     "detractors": nps["detractors"],
                                     "nps": round(100 * (nps["promoters"] - nps["detractors"])
                                                  / nps["answers"], 1)},
    }


def survey_section(session: Session, where: ColumnElement[bool]) -> dict[str, Any]:
    overall = score_counts(session, where).get("all", {})
    by = {}
    for name, column in DIMENSIONS.items():
        rows = [{"value": NONE_LABEL if value is None else str(value), **scores(counts)}
                for value, counts in score_counts(session, where, column).items()]
        by[name] = sorted(rows, key=lambda r: r["value"])
    return {"overall": scores(overall), "by": by, "note": NOTE}
