"""Why a customer has no message from a campaign.

The ledger explains everyone a campaign's run decided about (sent, deferred, capped, held out...).
Those it never decided about are explained here, from what the run could not see: the campaign's
segment (which of its conditions the customer does not meet), when the customer joined or last
changed against when the campaign last ran, and the run's own state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import select
from sqlmodel import Session

from orchestrator.ledger.campaigns import CANCELLED_STATUS
from orchestrator.models import Campaign, Customer, table_of
from orchestrator.segments import SegmentError, unmet_conditions

RE_RUN = "a run with the same name reaches them and sends nobody twice"


@dataclass(frozen=True)
class NotReached:
    """Why the campaign has no ledger row for the customer: a code and its words."""

    # not_in_segment, segment_unknown, cancelled, running, joined_after, changed_after, not_decided
    reason: str
    text: str
    unmet: list[dict[str, Any]] = field(default_factory=list)  # the segment's filter entries not met

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def filter_words(entry: dict[str, Any]) -> str:
    """A filter entry as segments.yaml writes it: ``tier: {in: [plus, premium]}``."""
    return yaml.safe_dump(entry, default_flow_style=True, sort_keys=False, width=10_000).strip()[1:-1]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)  # SQLite keeps UTC times naive


def _utc(t: datetime) -> str:
    return f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def why_not_reached(session: Session, customer_id: int, campaign: Campaign) -> NotReached:
    """Why ``campaign`` decided nothing for the customer (who has no ledger row of it)."""
    try:
        unmet = unmet_conditions(session, campaign.segment, customer_id)
    except SegmentError:
        return NotReached("segment_unknown", f"Its segment {campaign.segment!r} is not in segments.yaml any "
                          "more: who was in it when the campaign ran cannot be told.")
    if unmet is not None:
        words = "; ".join(f"`{filter_words(entry)}`" for entry in unmet)
        return NotReached("not_in_segment",
                          f"Not in segment {campaign.segment} (now): does not meet {words}.", unmet)
    c = table_of(Customer).c
    joined, changed = map(_aware, session.connection().execute(
        select(c.created_at, c.updated_at).where(c.id == customer_id)).one())
    last_run = _aware(campaign.updated_at)
    if campaign.status == CANCELLED_STATUS:
        return NotReached("cancelled", f"In segment {campaign.segment}, but the campaign was cancelled "
                          f"({_utc(last_run)}) before it reached them.")
    if campaign.status == "running":
        return NotReached("running", f"In segment {campaign.segment}; the campaign is still running "
                          f"(since {_utc(last_run)}) and has not reached them yet.")
    if joined > last_run:
        return NotReached("joined_after", f"In segment {campaign.segment}, but became a customer "
                          f"({_utc(joined)}) after the campaign last ran ({_utc(last_run)}): {RE_RUN}.")
    if changed > last_run:
        return NotReached("changed_after", f"In segment {campaign.segment} now, but their profile changed "
                          f"({_utc(changed)}) after the campaign last ran ({_utc(last_run)}), so they were "
                          f"probably not in it then: {RE_RUN}.")
    return NotReached("not_decided", f"In segment {campaign.segment}, yet the campaign's last run "
                      f"({_utc(last_run)}) decided nothing for them (it may have stopped before their "
                      f"chunk: its flow run tells): {RE_RUN}.")
