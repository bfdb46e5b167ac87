"""The contact policy (policy.yaml): schema, validation and loading.

Errors name the exact key path (``topics.marketing.when_capped``, ``caps[0].window``) and what is
wrong with it. Numbers are bounded (windows up to a year, caps, priorities, costs), so a typo such
as ``99999999w`` is an error here, not an overflow in the ledger query that uses it.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from channels.channel_set import channel_names, channel_spec
from orchestrator.clock_times import parse_clock
from orchestrator.policy.rates import Rates, parse_rates

ALL: Final = "all"
_WINDOW = re.compile(r"^\s*(\d{1,12})\s*([hdw])\s*$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7}
MAX_WINDOW = timedelta(days=366)
MAX_CAP = 1_000_000  # messages in one window
MAX_PRIORITY = 1_000  # either way; ledger rows store it as a 32-bit integer
MAX_COST = 1_000_000.0


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message names the key path."""


def parse_window(value: Any) -> timedelta:
    """``"48h"``, ``"2d"``, ``"1w"`` -> timedelta."""
    if isinstance(value, timedelta):
        return value
    match = _WINDOW.match(str(value)[:100])
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"window must look like '12h', '2d' or '1w', got {str(value)[:40]!r}")
    hours = int(match.group(1)) * _UNIT_HOURS[match.group(2)]
    if hours > MAX_WINDOW.days * 24:
        longest = f"{MAX_WINDOW.days}d"
        raise ValueError(f"window {match.group(0).strip()!r} is longer than {longest}, the longest allowed")
    return timedelta(hours=hours)


Window = Annotated[timedelta, BeforeValidator(parse_window)]


def known_channel(name: Any) -> str:
    """``name`` if an installed adapter declares it; the error names the installed channels."""
    if name not in channel_names():
        raise ValueError(f"unknown channel {name!r} (installed channels: {', '.join(channel_names())})")
    return str(name)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WhenCapped(StrEnum):
    defer = "defer"  # wait for the next free slot on the same channel
    fallback = "fallback"  # try the next channel
    drop = "drop"  # do not send


class ChannelSettings(_Strict):
    cost: float = Field(default=1.0, ge=0, le=MAX_COST, allow_inf_nan=False)


class Topic(_Strict):
    priority: int = Field(0, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    # In order of preference; a nested list ranks channels equally (cheapest first).
    channels: list[str]
    tone: str = "neutral"
    counts_toward_caps: bool = True
    bypass_caps: bool = False
    bypass_quiet_hours: bool = False
    required: bool = False  # still reaches customers who asked for no contact
    when_capped: WhenCapped = WhenCapped.defer

    @field_validator("channels", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        # Nested groups are ordered by cost later (Policy validator); keep them as "a|b" here.
        if not isinstance(value, list) or not value:
            raise ValueError("must be a non-empty list of channels")
        out: list[str] = []
        for item in value:
            group = item if isinstance(item, list) else [item]
            for ch in group:
                known_channel(ch)
            out.append("|".join(group))
        return out


class CapRule(_Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    max: int = Field(ge=1, le=MAX_CAP)
    window: Window
    channel: str = ALL
    topics: list[str] | Literal["all"] = ALL

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        if value != ALL and value not in channel_names():
            raise ValueError(f"must be 'all' or one of {', '.join(channel_names())}, got {value!r}")
        return value


class QuietWindow(_Strict):
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _clock(cls, value: Any) -> time:
        return parse_clock(value)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class HighTouchRule(_Strict):
    name: str = Field(min_length=1)
    topics: list[str]
    tiers: list[str]
    severities: list[str] | None = None  # matched against the intent's data["severity"]
    channel: str = "phone"
    tone: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return known_channel(value)


class SunsetRule(_Strict):
    """The rule's topics (marketing by default) stop on a channel where they are never read: after
    ``after`` of them sent there within ``window``, none opened (by a person), clicked or answered.
    They resume by themselves once fewer than ``after`` fall within the window, or at the first sign
    of life."""

    after: int = Field(ge=1, le=MAX_CAP)
    window: Window
    topics: list[str] = Field(default_factory=lambda: ["marketing"], min_length=1)


class Policy(_Strict):
    channels: dict[str, ChannelSettings] = Field(default_factory=dict)
    topics: dict[str, Topic]
    caps: list[CapRule] = Field(default_factory=list)
    preference_caps: dict[Literal["daily", "weekly", "monthly"], Window] = Field(default_factory=dict)
    quiet_hours: dict[str, QuietWindow] = Field(default_factory=dict)
    high_touch: list[HighTouchRule] = Field(default_factory=list)
    sunset: dict[str, SunsetRule] = Field(default_factory=dict)  # channel -> rule
    rates: Rates = Field(default_factory=Rates)  # set by parse_policy: validating it needs the topics

    @field_validator("channels", "quiet_hours", "sunset")
    @classmethod
    def _known_channels(cls, value: dict[str, Any]) -> dict[str, Any]:
        for ch in value:
            known_channel(ch)
        return value

    @model_validator(mode="after")
    def _cross_references(self) -> Policy:
        problems: list[str] = []
        names = [c.name for c in self.caps]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"caps: duplicate cap name {dup!r}")
        for i, cap in enumerate(self.caps):
            if cap.topics != ALL:
                for t in cap.topics:
                    if t not in self.topics:
                        problems.append(f"caps[{i}].topics: unknown topic {t!r}")
        for i, rule in enumerate(self.high_touch):
            for t in rule.topics:
                if t not in self.topics:
                    problems.append(f"high_touch[{i}].topics: unknown topic {t!r}")
        for channel, sunset in self.sunset.items():
            for t in sunset.topics:
                if t not in self.topics:
                    problems.append(f"sunset.{channel}.topics: unknown topic {t!r}")
                elif self.topics[t].required:
                    problems.append(f"sunset.{channel}.topics: {t!r} is required: it may not stop")
        if problems:
            raise ValueError("; ".join(problems))
        # Resolve equal-rank channel groups by cost (frozen model: write through __dict__).
        for topic in self.topics.values():
            ordered: list[str] = []
            for entry in topic.channels:
                group = entry.split("|")
                ordered.extend(sorted(group, key=lambda ch: (self.cost(ch), group.index(ch))))
            topic.__dict__["channels"] = list(dict.fromkeys(ordered))
        return self

    def cost(self, channel: str) -> float:
        """The policy's cost for the channel, else the one its adapter declares."""
        settings = self.channels.get(channel)
        return settings.cost if settings else channel_spec(channel).cost

    def quiet_window(self, channel: str) -> QuietWindow | None:
        """The policy's quiet hours for the channel, else its adapter's default."""
        window = self.quiet_hours.get(channel)
        if window is None and (default := channel_spec(channel).quiet_hours) is not None:
            window = QuietWindow(start=default[0], end=default[1])
        return window

    def required_topics(self) -> list[str]:
        """Topics marked required (security notices): they reach customers who asked for no contact."""
        return [name for name, topic in self.topics.items() if topic.required]

    def topic(self, name: str) -> Topic:
        try:
            return self.topics[name]
        except KeyError:
            raise PolicyError(f"unknown topic {name!r} (policy topics: {', '.join(self.topics)})") from None

    def caps_for(self, topic: str, channel: str) -> list[CapRule]:
        """Shared cap rules limiting ``topic`` on ``channel`` (none for topics that do not count)."""
        if not self.topics[topic].counts_toward_caps:
            return []
        return [
            c
            for c in self.caps
            if (c.channel == ALL or c.channel == channel) and (c.topics == ALL or topic in c.topics)
        ]

    @property
    def longest_window(self) -> timedelta:
        windows = [c.window for c in self.caps] + list(self.preference_caps.values())
        return max(windows, default=timedelta(0))


def _format_error(exc: ValidationError) -> str:
    lines = []
    errors = exc.errors()
    if len(errors) > 10:  # a file repeating one mistake (through YAML aliases) gets a short answer
        lines.append(f"{len(errors)} problems, the first 10")
    for err in errors[:10]:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        path = path or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


def parse_policy(data: Any, source: str = "policy") -> Policy:
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: expected a mapping at the top level")
    data = dict(data)
    raw_rates = data.pop("rates", None)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"{source}: {_format_error(exc)}") from None
    try:
        rates = parse_rates(raw_rates, topics=set(policy.topics), adapters=_adapter_names())
    except ValueError as exc:
        raise PolicyError(f"{source}: {exc}") from None
    policy.__dict__["rates"] = rates  # frozen model
    return policy


def _adapter_names() -> set[str]:
    from channels.registry import available_adapters

    return set(available_adapters())


def load_policy(path: Path | str | None = None) -> Policy:
    """Loads and validates the policy (default: ORCH_POLICY_FILE, else policy.yaml)."""
    if path is None:
        from orchestrator.settings import get_settings

        path = get_settings().policy_path
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    return _parse_policy_text(text, str(path))


@lru_cache(maxsize=16)
def _parse_policy_text(text: str, source: str) -> Policy:
    # Keyed on the file's text, so an edit takes effect at once; parsing and validating costs
    # tens of milliseconds, and every reserved chunk loads the policy. Policy is frozen: sharing is safe.
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise PolicyError(f"{source}: nested too deeply to read") from None
    return parse_policy(data, source)
