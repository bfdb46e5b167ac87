"""Send rates (the ``rates:`` section of policy.yaml): how fast each lane may go.

A rate is named by its key, which is also its reason code when a message waits for it
(``pace:<name>``). The key says what it limits:

- a channel (``sms: 10/s``) or an adapter (``sendgrid: 50 requests/s``): the provider's lane.
  ``requests`` counts provider calls (a SendGrid request carries up to 1,000 recipients),
  ``messages`` (the default) counts messages;
- any other name with ``topics:`` (``marketing: {rate: 2000/min, topics: [marketing]}``): every
  message of those topics, whatever the channel;
- ``phone`` with ``capacity: 40/h`` and ``business_hours``: calls the agents can take, only during
  their shift.

``urgent_priority`` (default 80: security, outage, transactional) is the topic priority from which
traffic is urgent: it takes a lane's budget first and bulk traffic on that lane yields to it.
An adapter may declare its provider's default rate (``Limits.rate_per_second``, e.g. Twilio's
``ORCH_TWILIO_RATE``); a rate here for that channel or adapter overrides it.

There is no rate per sender because an adapter's lane is its sender's: each adapter sends every
message from the one sender its settings name (a Twilio number or Messaging Service, a SendGrid
from address, an X account), and nothing in a message chooses another. A provider that lets each
message pick its sender would make the sender a lane of its own; until then ``twilio: 1/s`` is the
long code's rate.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from channels.channel_set import channel_names
from orchestrator.clock_times import parse_clock

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RATE = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(messages?|requests?|calls?|tasks?)?\s*/\s*"
    r"(s|sec|second|min|minute|h|hour)\s*$"
)
_PER = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
# A lane's bucket holds this much time's worth of its rate: requests grouped in one provider
# call may go together (a small burst over the declared rate in any one-second window).
DEFAULT_BURST_SECONDS = 0.1
DEFAULT_URGENT_PRIORITY = 80

Unit = Literal["messages", "requests"]


def parse_rate(value: Any) -> tuple[float, Unit]:
    """``"10/s"`` -> (10.0, "messages"), ``"50 requests/s"`` -> (50.0, "requests"), per second."""
    match = _RATE.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"a rate looks like '10/s', '50 requests/s', '2000/min' or '40/h', got {value!r}")
    unit: Unit = "requests" if (match.group(2) or "").startswith("request") else "messages"
    return float(match.group(1)) / _PER[match.group(3)], unit


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BusinessHours(_Strict):
    """The call centre's shift, in its own time zone."""

    start: time
    end: time
    days: list[str] = Field(default_factory=lambda: list(DAYS[:5]))
    timezone: str = "UTC"

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> time:
        return parse_clock(value)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> list[str]:
        if isinstance(value, str):  # "mon-fri"
            first, _, last = value.partition("-")
            if first not in DAYS or (last and last not in DAYS):
                raise ValueError(f"days look like 'mon-fri' or [mon, tue], got {value!r}")
            a, b = DAYS.index(first), DAYS.index(last or first)
            return [DAYS[i % 7] for i in range(a, (b if b >= a else b + 7) + 1)]
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list of days (mon..sun) or a range such as 'mon-fri'")
        for day in value:
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r} (known: {', '.join(DAYS)})")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/London)") from None
        return value

    @model_validator(mode="after")
    def _order(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be after start (a shift within one day)")
        return self

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself when the shift is on, else when it next begins (aware UTC in, aware out)."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        for offset in range(8):
            day = (local + timedelta(days=offset)).date()
            if DAYS[day.weekday()] not in self.days:
                continue
            opens = datetime.combine(day, self.start, zone)
            closes = datetime.combine(day, self.end, zone)
            if local < closes:
                return max(local, opens).astimezone(at.tzinfo)
        raise AssertionError("a non-empty set of days has a shift within a week")

    def closes_after(self, at: datetime) -> datetime:
        """The end of the shift that is on at ``at`` (call ``next_open`` first)."""
        zone = ZoneInfo(self.timezone)
        local = at.astimezone(zone)
        return datetime.combine(local.date(), self.end, zone).astimezone(at.tzinfo)


class RateRule(_Strict):
    """One named rate. ``per_second`` and ``unit`` come from ``rate`` (or ``capacity``)."""

    name: str
    per_second: float
    unit: Unit = "messages"
    burst: float  # units that may go together
    channel: str | None = None  # a channel's lane
    adapter: str | None = None  # an adapter's lane
    topics: list[str] | None = None  # a set of topics across channels
    business_hours: BusinessHours | None = None

    def finish(self, start: datetime, units: float) -> datetime:
        """When ``units`` starting at ``start`` are through at this rate (during business hours)."""
        seconds = units / self.per_second
        if self.business_hours is None:
            return start + timedelta(seconds=seconds)
        at = start
        for _ in range(3660):  # shifts of ten years at most
            at = self.business_hours.next_open(at)
            shift = (self.business_hours.closes_after(at) - at).total_seconds()
            if seconds <= shift:
                return at + timedelta(seconds=seconds)
            seconds -= shift
            at = self.business_hours.closes_after(at)
        return at

    @property
    def lane(self) -> bool:
        """A provider lane (429s lower it), as opposed to a rate per set of topics."""
        return self.topics is None


class Rates(_Strict):
    urgent_priority: int = DEFAULT_URGENT_PRIORITY
    rules: dict[str, RateRule] = Field(default_factory=dict)

    def for_message(self, channel: str, adapter: str, topic: str) -> list[RateRule]:
        """The rates a message on ``channel`` through ``adapter`` of ``topic`` must wait for."""
        out = []
        for rule in self.rules.values():
            if rule.topics is not None:
                if topic in rule.topics:
                    out.append(rule)
            elif rule.channel == channel or rule.adapter == adapter:
                out.append(rule)
        return out

    def declares_lane(self, channel: str, adapter: str) -> bool:
        return any(r.lane and (r.channel == channel or r.adapter == adapter) for r in self.rules.values())

    def for_lane(self, channel: str, adapter: Any, topic: str) -> list[RateRule]:
        """The rates a message of ``topic`` sent by ``adapter`` (an adapter object, or None) on
        ``channel`` waits for: ``for_message``, plus the adapter's own default rate
        (``Limits.rate_per_second``) when no rate here names its channel or adapter."""
        name = getattr(adapter, "name", "")
        rules = self.for_message(channel, name, topic)
        limits = getattr(adapter, "limits", None)
        declared = getattr(limits, "rate_per_second", None)
        if declared and not self.declares_lane(channel, name):
            unit: Unit = getattr(limits, "rate_unit", "messages")
            rules.append(adapter_default(channel, channel, name, float(declared), unit))
        return rules


def parse_rates(value: Any, *, topics: set[str], adapters: set[str]) -> Rates:
    """Validates the ``rates:`` mapping; raises ValueError naming ``rates.<key>...`` at fault."""
    if value is None:
        return Rates()
    if not isinstance(value, dict):
        raise ValueError("rates: expected a mapping of rate name to rate")
    problems: list[str] = []
    rules: dict[str, RateRule] = {}
    urgent = value.get("urgent_priority", DEFAULT_URGENT_PRIORITY)
    if not isinstance(urgent, int) or isinstance(urgent, bool):
        problems.append(f"rates.urgent_priority: expected a whole number, got {urgent!r}")
        urgent = DEFAULT_URGENT_PRIORITY
    for name, spec in value.items():
        if name == "urgent_priority":
            continue
        try:
            rules[str(name)] = _rule(str(name), spec, topics, adapters)
        except ValueError as exc:
            problems.append(f"rates.{name}{_strip(exc)}")
    if problems:
        raise ValueError("; ".join(problems))
    return Rates(urgent_priority=urgent, rules=rules)


def _strip(exc: ValueError) -> str:
    text = str(exc)
    return text if text.startswith(".") else f": {text}"


def _rule(name: str, spec: Any, topics: set[str], adapters: set[str]) -> RateRule:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        raise ValueError("a rate name uses lowercase letters, digits, '-' and '_'")
    shorthand = isinstance(spec, str | int | float) and not isinstance(spec, bool)
    if shorthand:
        spec = {"rate": spec}
    if not isinstance(spec, dict):
        raise ValueError("expected a rate such as '10/s' or a mapping with 'rate' (or 'capacity')")
    known = {"rate", "capacity", "burst", "topics", "business_hours"}
    for key in spec:
        if key not in known:
            raise ValueError(f".{key}: unknown key (known: {', '.join(sorted(known))})")
    given = [k for k in ("rate", "capacity") if k in spec]
    if len(given) != 1:
        raise ValueError("give exactly one of 'rate' or 'capacity'")
    try:
        per_second, unit = parse_rate(spec[given[0]])
    except ValueError as exc:
        raise ValueError(str(exc) if shorthand else f".{given[0]}: {exc}") from None
    target: dict[str, Any] = {}
    if "topics" in spec:
        if name in channel_names() or name in adapters:
            raise ValueError(".topics: a rate per set of topics needs a name of its own, not a channel's or "
                             "an adapter's")
        chosen = spec["topics"]
        if not isinstance(chosen, list) or not chosen:
            raise ValueError(".topics: must be a non-empty list of topics")
        unknown = [t for t in chosen if t not in topics]
        if unknown:
            raise ValueError(f".topics: unknown topic {unknown[0]!r} "
                             f"(policy topics: {', '.join(sorted(topics))})")
        if unit == "requests":
            raise ValueError(f".{given[0]}: a rate per set of topics counts messages, not requests")
        target["topics"] = list(chosen)
    elif name in channel_names():
        target["channel"] = name
    elif name in adapters:
        target["adapter"] = name
    else:
        raise ValueError(
            f"not a channel ({', '.join(channel_names())}) or an adapter ({', '.join(sorted(adapters))}); "
            "a rate per set of topics names them with 'topics:'"
        )
    hours = None
    if "business_hours" in spec:
        if target.get("channel") != "phone":
            raise ValueError(".business_hours: only the phone channel (calls for agents) has business hours")
        try:
            hours = BusinessHours.model_validate(spec["business_hours"])
        except Exception as exc:  # pydantic's ValidationError: name the nested key
            errors: list[Any] = getattr(exc, "errors", lambda: [])()
            if errors:
                err = errors[0]
                path = ".".join(str(p) for p in err["loc"])
                raise ValueError(f".business_hours{'.' + path if path else ''}: "
                                 f"{err['msg'].removeprefix('Value error, ')}") from None
            raise ValueError(f".business_hours: {exc}") from None
    burst = spec.get("burst", max(1.0, per_second * DEFAULT_BURST_SECONDS))
    if isinstance(burst, bool) or not isinstance(burst, int | float) or burst < 1:
        raise ValueError(f".burst: expected a number of at least 1, got {burst!r}")
    return RateRule(name=name, per_second=per_second, unit=unit, burst=float(burst), business_hours=hours,
                    **target)


def adapter_default(rule_name: str, channel: str, adapter: str, per_second: float, unit: Unit) -> RateRule:
    """The rate an adapter declares for its provider, used when the policy gives none for its lane."""
    return RateRule(name=rule_name, per_second=per_second, unit=unit,
                    burst=max(1.0, per_second * DEFAULT_BURST_SECONDS), channel=channel, adapter=adapter)
