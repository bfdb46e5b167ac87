"""Dry runs: what a campaign would do to an audience, per channel and per reason, writing nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice

from sqlalchemy import select
from sqlmodel import Session

from orchestrator.db import get_engine, member_of
from orchestrator.models import Customer, table_of
from orchestrator.policy.config import Policy, load_policy
from orchestrator.policy.intents import Intent
from orchestrator.policy.quiet_hours import QuietHours
from orchestrator.policy.rates import RateRule
from orchestrator.policy.reserve import decide_chunk
from orchestrator.policy.timing import next_local_time, zone_for


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
    sending_now: Counter[str] = field(default_factory=Counter)  # channel -> rows that would go at once
    # At the declared rates: when the last of the rows sent at once would go out, and the rate that
    # sets it (None: no rate limits them).
    last_send_at: datetime | None = None
    paced_by: str | None = None
    # channel -> customers whose quiet hours may begin before their lane is through at those rates
    # (an upper bound: who goes first is not planned); their messages would wait for the morning.
    quiet_hours_reached: Counter[str] = field(default_factory=Counter)

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
            "last_send_at": self.last_send_at.isoformat() if self.last_send_at else None,
            "paced_by": self.paced_by,
            "quiet_hours_reached": dict(self.quiet_hours_reached),
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
    shape: Callable[[Intent], Intent] | None = None,
) -> PlanSummary:
    """Decides for every customer of ``segment`` (or of ``customer_ids``) as of ``at``; writes nothing.

    ``shape`` adjusts each customer's intent as the real run would (an experiment's variant or holdout)."""
    policy = policy or load_policy()
    policy.topic(topic)  # an unknown topic fails before any work
    at = at or datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    summary = PlanSummary(topic=topic, template=template, at=at)
    quiet = QuietHours.of(policy)
    zones: dict[str, Counter[str]] = {}  # quiet-hours channel -> zones of the customers sent at once
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
                if shape is not None:
                    intents = [shape(intent) for intent in intents]
                summary.customers += len(chunk)
                on_quiet_channels: dict[int, str] = {}  # customer -> channel with quiet hours, sent at once
                for d in decide_chunk(session, intents, at, policy):
                    if d.high_touch:
                        summary.high_touch += 1
                        continue
                    summary.outcomes[d.outcome] += 1
                    if d.outcome != "suppress":
                        summary.channels[d.channel] += 1
                    if d.outcome == "send":
                        summary.sending_now[d.channel] += 1
                        if d.channel in quiet.by_channel and topic not in quiet.any_hour_topics:
                            on_quiet_channels[d.customer_id] = d.channel
                    summary.reasons.update(d.reason_codes)
                for cid, zone in customer_zones(session, on_quiet_channels).items():
                    zones.setdefault(on_quiet_channels[cid], Counter())[zone] += 1
                session.rollback()  # end each chunk's read: SQLite readers here hold the writer lock
        finally:
            session.rollback()
    ends = lane_ends(policy, topic, summary.sending_now, at)
    summary.last_send_at, summary.paced_by = _last(ends)
    for channel, by_zone in zones.items():
        if channel in ends:  # a rate limits it: its quiet hours may begin before its last message
            start, (last, _) = quiet.by_channel[channel][0], ends[channel]
            summary.quiet_hours_reached[channel] = sum(
                n for zone, n in by_zone.items() if next_local_time(start, zone_for(zone), at) < last)
    return summary


def customer_zones(session: Session, customer_ids: Collection[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    c = table_of(Customer).c
    query = select(c.id, c.timezone).where(member_of(session, c.id, list(customer_ids)))
    return {cid: zone or "UTC" for cid, zone in session.connection().execute(query)}


def last_send_estimate(policy: Policy, topic: str, sending: Counter[str], at: datetime
                       ) -> tuple[datetime | None, str | None]:
    """When the last of ``sending`` (messages per channel, all of ``topic``) goes out at the rates
    in force, and the rate that sets it (see ``lane_ends``)."""
    return _last(lane_ends(policy, topic, sending, at))


def _last(ends: dict[str, tuple[datetime, str]]) -> tuple[datetime | None, str | None]:
    return max(ends.values(), default=(None, None))


def lane_ends(policy: Policy, topic: str, sending: Counter[str], at: datetime
              ) -> dict[str, tuple[datetime, str]]:
    """Per channel of ``sending`` (messages per channel, all of ``topic``) that a rate limits: when
    its last message goes out at the rates in force, and the rate that sets it. The rates are the
    policy's and the default rate of the adapter each channel would send through now (Twilio's 1
    message a second, unless the policy names the lane). Requests are counted as SendGrid merges
    them (up to ``ORCH_SENDGRID_BATCH_SIZE`` a request); traffic already queued is not counted."""
    from channels.sendgrid.settings import SendGridSettings
    from channels.settings import current

    email_batch_size = current(SendGridSettings).batch_size
    units: dict[str, float] = {}
    rules: dict[str, RateRule] = dict(policy.rates.rules)
    lanes: dict[str, list[str]] = {}
    for channel, n in sending.items():
        for rule in policy.rates.for_lane(channel, _sending_adapter(channel), topic):
            rules.setdefault(rule.name, rule)
            lanes.setdefault(channel, []).append(rule.name)
            per_request = max(1, email_batch_size) if channel == "email" else 1
            units[rule.name] = units.get(rule.name, 0.0) + (
                -(-n // per_request) if rule.unit == "requests" else n)
    ends = {name: rules[name].finish(at, amount) for name, amount in units.items()}
    return {channel: max((ends[name], name) for name in names) for channel, names in lanes.items()}


class _NamedAdapter:
    """An adapter chosen by name that could not be set up here: its name still selects the
    policy's rates for it, but it declares no rate of its own."""

    def __init__(self, name: str) -> None:
        self.name = name


def _sending_adapter(channel: str) -> object:
    """The adapter a dispatch would send ``channel`` through now (as ``channels.registry`` chooses
    it), for its name and declared rate; it is closed again at once, having sent nothing."""
    from channels.base import ConfigurationError
    from channels.channel_set import declaring_adapter
    from channels.registry import adapter_for
    from channels.settings import AdapterChoice, current
    from orchestrator.settings import get_settings

    try:
        adapter = adapter_for(channel, get_settings())
    except ConfigurationError:  # dispatch would report the set-up problem; the policy's rates still apply
        return _NamedAdapter(current(AdapterChoice).channel_adapters.get(channel)
                             or declaring_adapter(channel) or "")
    adapter.close()  # only its name and limits are read
    return adapter
