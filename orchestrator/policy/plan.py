"""Dry runs: what a campaign would do to an audience, per channel and per reason, writing nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlmodel import Session

from orchestrator.db import get_engine
from orchestrator.policy.config import Policy, load_policy
from orchestrator.policy.intents import Intent
from orchestrator.policy.reserve import decide_chunk


@dataclass
class PlanSummary:
    topic: str
    template: str
    at: datetime
    customers: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # send / defer / suppress (main rows)
    channels: Counter[str] = field(default_factory=Counter)  # channel of rows that would go out
    reasons: Counter[str] = field(default_factory=Counter)  # reason code -> rows
    high_touch: int = 0  # additional phone rows

    def as_dict(self) -> dict:
        return {
            "topic": self.topic,
            "template": self.template,
            "at": self.at.isoformat(),
            "customers": self.customers,
            "outcomes": dict(self.outcomes),
            "channels": dict(self.channels),
            "reasons": dict(self.reasons.most_common()),
            "high_touch": self.high_touch,
        }


def _chunks(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    it = iter(ids)
    while chunk := list(islice(it, size)):
        yield chunk


def plan_audience(
    segment: str | None,
    topic: str,
    template: str,
    at: datetime | None = None,
    *,
    send_time: str = "now",
    customer_ids: Iterable[int] | None = None,
    policy: Policy | None = None,
    url: str | None = None,
    chunk_size: int = 1000,
    dedupe_key: str = "plan",
) -> PlanSummary:
    """Decides for every customer of ``segment`` (or of ``customer_ids``) as of ``at``; writes nothing."""
    policy = policy or load_policy()
    policy.topic(topic)  # an unknown topic fails before any work
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    summary = PlanSummary(topic=topic, template=template, at=at)
    with Session(get_engine(url)) as session:
        try:
            if customer_ids is not None:
                chunks: Iterable[list[int]] = _chunks(customer_ids, chunk_size)
            elif segment is not None:
                from orchestrator.segments import iter_audience_chunks

                chunks = iter_audience_chunks(session, segment, chunk_size=chunk_size)
            else:
                raise ValueError("give a segment or a list of customer ids")
            for chunk in chunks:
                intents = [
                    Intent(customer_id=cid, topic=topic, template=template, dedupe_key=dedupe_key,
                           send_time=send_time)
                    for cid in chunk
                ]
                summary.customers += len(chunk)
                for d in decide_chunk(session, intents, at, policy):
                    if d.high_touch:
                        summary.high_touch += 1
                        continue
                    summary.outcomes[d.outcome] += 1
                    if d.outcome != "suppress":
                        summary.channels[d.channel] += 1
                    summary.reasons.update(d.reason_codes)
                session.rollback()  # end each chunk's read: SQLite readers here hold the writer lock
        finally:
            session.rollback()
    return summary
