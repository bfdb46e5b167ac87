"""Why a campaign, or an incident's notices, did not reach a customer.

The ledger explains everyone a run decided about (sent, deferred, capped, held out...). Those it
never decided about are explained here, from what the run could not see: its audience (which of
the segment's conditions, or of an incident's affected attributes, the customer does not meet),
when the customer joined or last changed against when it last ran, and where it stands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlmodel import Session

from orchestrator.ledger.campaigns import CANCELLED_STATUS
from orchestrator.models import Campaign, Customer, Incident, as_utc, table_of
from orchestrator.outage_notice import affected_filter
from orchestrator.segments import SegmentError, unmet_conditions


@dataclass(frozen=True)
class NotReached:
    """Why the run has no ledger row for the customer: a code and its words."""

    # not_in_audience, segment_unknown, cancelled, running, resolved, joined_after, changed_after,
    # not_decided
    reason: str
    text: str
    unmet: list[dict[str, Any]] = field(default_factory=list)  # the filter entries not met

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Audience:
    """Whom a campaign or an incident's notices were for, when they last went, and what reaches a
    customer who was missed."""

    segment: str
    extra: dict[str, Any] | None  # an incident's affected attributes, as a filter
    last_run: datetime
    ran: str  # "the campaign last ran", "the incident's last update"
    again: str  # what reaches a missed customer now
    state: str | None = None  # "running", "cancelled", "resolved"

    @classmethod
    def of_campaign(cls, campaign: Campaign) -> Audience:
        state = campaign.status if campaign.status in ("running", CANCELLED_STATUS) else None
        return cls(campaign.segment, None, as_utc(campaign.updated_at), "the campaign last ran",
                   "a run with the same name reaches them and sends nobody twice", state)

    @classmethod
    def of_incident(cls, incident: Incident) -> Audience:
        return cls(incident.segment or "all", affected_filter(incident.affected), as_utc(incident.updated_at),
                   "the incident's last update", "triggering that update again reaches them and notifies "
                   "nobody twice", "resolved" if incident.status == "resolved" else None)

    def words(self) -> str:
        if not self.extra:
            return f"segment {self.segment}"
        return f"segment {self.segment}, affected `{filter_words(self.extra)}`"


def filter_words(entry: dict[str, Any]) -> str:
    """A filter as segments.yaml writes it: ``tier: {in: [plus, premium]}``."""
    return yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10_000).strip()[1:-1]


def _utc(t: datetime) -> str:
    return f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def why_not_reached(session: Session, customer_id: int, audience: Audience) -> NotReached:
    """Why the run decided nothing for the customer (who has no ledger row of it)."""
    try:
        unmet = unmet_conditions(session, audience.segment, customer_id, audience.extra)
    except SegmentError:
        return NotReached("segment_unknown", f"Its segment {audience.segment!r} is not in segments.yaml any "
                          "more: who was in it then cannot be told.")
    who = audience.words()
    if unmet is not None:
        words = "; ".join(f"`{filter_words(entry)}`" for entry in unmet)
        return NotReached("not_in_audience", f"Not in {who} (now): does not meet {words}.", unmet)
    c = table_of(Customer).c
    joined, changed = map(as_utc, session.connection().execute(
        select(c.created_at, c.updated_at).where(c.id == customer_id)).one())
    last = f"{audience.ran} ({_utc(audience.last_run)})"
    if audience.state == CANCELLED_STATUS:
        return NotReached("cancelled", f"In {who}, but the campaign was cancelled "
                          f"({_utc(audience.last_run)}) before it reached them.")
    if audience.state == "running":
        return NotReached("running", f"In {who}; the campaign is still running (since "
                          f"{_utc(audience.last_run)}) and has not reached them yet.")
    if audience.state == "resolved":
        return NotReached("resolved", f"In {who}, but no update reached them and the incident is resolved "
                          f"({_utc(audience.last_run)}): the resolution goes only to those told of it.")
    if joined > audience.last_run:
        return NotReached("joined_after", f"In {who}, but became a customer ({_utc(joined)}) after {last}: "
                          f"{audience.again}.")
    if changed > audience.last_run:
        return NotReached("changed_after", f"In {who} now, but their profile changed ({_utc(changed)}) after "
                          f"{last}, so they were probably not in it then: {audience.again}.")
    return NotReached("not_decided", f"In {who}, yet {last} decided nothing for them (it may have stopped "
                      f"before their chunk: its flow run tells): {audience.again}.")
