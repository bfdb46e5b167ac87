"""Frequency caps: how many messages a rolling window holds, and the next slot one frees.

A cap counts the customer's ledger rows (``HistoryEntry``) whose topic counts toward caps and
whose channel and topic the rule covers; ``decide`` asks whether one more fits and, when it does
not, when the earliest free slot outside quiet hours is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.policy.config import ALL, CapRule
from orchestrator.policy.intents import HistoryEntry
from orchestrator.policy.timing import Window, after_quiet_hours


@dataclass(frozen=True)
class Cap:
    """A cap rule as applied to one customer: the shared rules plus their chosen frequency."""

    name: str
    max: int
    window: timedelta
    channel: str  # ALL or a channel
    topics: frozenset[str] | None  # None: every topic that counts toward caps

    @classmethod
    def from_rule(cls, rule: CapRule) -> Cap:
        topics = None if rule.topics == ALL else frozenset(rule.topics)
        return cls(rule.name, rule.max, rule.window, rule.channel, topics)

    def counts(self, entry: HistoryEntry, counting: frozenset[str]) -> bool:
        return (
            entry.topic in counting
            and (self.channel == ALL or self.channel == entry.channel)
            and (self.topics is None or entry.topic in self.topics)
        )

    def describe(self) -> str:
        scope = "all channels" if self.channel == ALL else self.channel
        return f"{self.max} per {window_words(self.window)} on {scope}"


# A cap with the send times of the history rows it counts, sorted.
CapHistory = tuple[Cap, list[datetime]]


def window_words(window: timedelta) -> str:
    hours = int(window.total_seconds() // 3600)
    if hours % (24 * 7) == 0:
        n, unit = hours // (24 * 7), "week"
    elif hours % 24 == 0:
        n, unit = hours // 24, "day"
    else:
        n, unit = hours, "hour"
    return f"{n} {unit}{'s' if n != 1 else ''}" if n != 1 else unit


def cap_allows(times: list[datetime], at: datetime, cap: Cap) -> bool:
    """Would one more message at ``at`` keep every rolling window (t - W, t] at or under the max?

    The fullest window containing ``at`` ends at ``at`` or at a later message within W.
    """
    window = cap.window
    ends = [at] + [x for x in times if at < x < at + window]
    for end in ends:
        if sum(1 for x in times if end - window < x <= end) + 1 > cap.max:
            return False
    return True


def blocking_cap(caps: list[CapHistory], at: datetime) -> Cap | None:
    """The first cap that one more message at ``at`` would break, if any."""
    for cap, times in caps:
        if not cap_allows(times, at, cap):
            return cap
    return None


def next_free_slot(
    caps: list[CapHistory], start: datetime, quiet: list[Window], zone: ZoneInfo
) -> datetime | None:
    """The earliest instant >= start that no cap blocks and no quiet window covers.

    Only instants where a past message leaves a window can free a slot, so those are the candidates.
    """
    candidates = {start}
    for cap, times in caps:
        candidates.update(x + cap.window for x in times if x + cap.window > start)
    for candidate in sorted(candidates):
        at = after_quiet_hours(candidate, quiet, zone) if quiet else candidate
        if at is None:
            return None
        if blocking_cap(caps, at) is None:
            return at
    return None
