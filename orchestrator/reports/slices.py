"""Which part of the ledger a report covers: a campaign, an incident, a topic, a time window.

A slice becomes one SQL condition on the ``message`` table; names are resolved to ids first,
so an unknown campaign or incident is a clear error rather than an empty report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Campaign, Incident


class UnknownSlice(LookupError):
    """The campaign or incident named does not exist."""


@dataclass(frozen=True)
class ReportSlice:
    """Messages decided for ``campaign`` (its name), ``incident`` (its key, every update),
    ``topic``, and decided at or after ``since`` and before ``until``; any combination."""

    campaign: str | None = None
    incident: str | None = None
    topic: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def title(self) -> str:
        parts = []
        if self.campaign:
            parts.append(f"campaign {self.campaign}")
        if self.incident:
            parts.append(f"incident {self.incident}")
        if self.topic:
            parts.append(f"topic {self.topic}")
        if self.since:
            parts.append(f"since {self.since:%Y-%m-%d %H:%M} UTC")
        if self.until:
            parts.append(f"until {self.until:%Y-%m-%d %H:%M} UTC")
        return ", ".join(parts) or "every message"

    @property
    def name(self) -> str:
        """``campaign-<name>``, ``incident-<id>`` or ``overview``: for run and artifact names."""
        if self.campaign:
            return f"campaign-{self.campaign}"
        if self.incident:
            return f"incident-{self.incident}"
        return "overview"

    def as_dict(self) -> dict[str, Any]:
        return {"campaign": self.campaign, "incident": self.incident, "topic": self.topic,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None, "title": self.title()}


def slice_condition(session: Session, part: ReportSlice) -> ColumnElement[bool]:
    """The WHERE condition on ``message`` selecting the slice's rows."""
    c = MESSAGE.c
    conditions: list[ColumnElement[bool]] = []
    if part.campaign is not None:
        campaign_id = session.execute(
            select(col(Campaign.id)).where(col(Campaign.name) == part.campaign)).scalar()
        if campaign_id is None:
            raise UnknownSlice(f"no campaign named {part.campaign!r}")
        conditions.append(c.campaign_id == campaign_id)
    if part.incident is not None:
        incident_id = session.execute(
            select(col(Incident.id)).where(col(Incident.incident_key) == part.incident)).scalar()
        if incident_id is None:
            raise UnknownSlice(f"no incident {part.incident!r}")
        conditions.append(c.incident_id == incident_id)
    if part.topic is not None:
        conditions.append(c.topic == part.topic)
    if part.since is not None:
        conditions.append(c.created_at >= part.since)
    if part.until is not None:
        conditions.append(c.created_at < part.until)
    return and_(true(), *conditions)


_PERIOD = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_UNIT = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_period(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w`` as a timedelta; ValueError with the accepted forms otherwise."""
    match = _PERIOD.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a period: write a positive number of hours, days or weeks "
                         "such as 12h, 30d or 2w")
    return int(match.group(1)) * _UNIT[match.group(2)]


def recent_slices(session: Session, since: datetime) -> list[ReportSlice]:
    """Campaigns and incidents that decided a message at or after ``since``, oldest first."""
    c = MESSAGE.c
    campaigns = session.execute(
        select(col(Campaign.name)).join(MESSAGE, c.campaign_id == col(Campaign.id))
        .where(c.created_at >= since)
        .group_by(col(Campaign.id), col(Campaign.name)).order_by(col(Campaign.id))).scalars()
    incidents = session.execute(
        select(col(Incident.incident_key)).join(MESSAGE, c.incident_id == col(Incident.id))
        .where(c.created_at >= since)
        .group_by(col(Incident.id), col(Incident.incident_key)).order_by(col(Incident.id))).scalars()
    return ([ReportSlice(campaign=name) for name in campaigns]
            + [ReportSlice(incident=key) for key in incidents])
