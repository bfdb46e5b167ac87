"""Quiet hours: which windows hold a message, when it is decided and again when it is about to go.

A decision moves a message past the quiet hours it falls into (``decide``), but a message can still
reach the provider later than decided: a backlog, a rate that carries an SMS campaign past 21:00, a
retry, a dispatch that resumes after a crash. ``hold`` is asked again right before the send
(``dispatch.compose``), so a message never goes out inside the customer's quiet hours unless its
topic goes out at any hour (security notices).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from channels.channel_set import channel_names
from orchestrator.clock_times import clock_or_none
from orchestrator.policy.config import Policy
from orchestrator.policy.timing import Window, after_quiet_hours, in_window

PERSONAL = "personal"  # the name of a customer's own quiet hours, beside the channels' names


def quiet_windows(by_channel: Mapping[str, Window], channel: str, personal: Window | None
                  ) -> list[tuple[str, Window]]:
    """The named windows that apply on ``channel``: the policy's for the channel, and the customer's
    own quiet hours (added to the policy's, never replacing them)."""
    out = []
    if channel in by_channel:
        out.append((channel, by_channel[channel]))
    if personal is not None:
        out.append((PERSONAL, personal))
    return out


def personal_window(quiet_start: str | None, quiet_end: str | None) -> Window | None:
    """A customer's own quiet hours from their stored "HH:MM" times; None unless both are set and differ."""
    start, end = clock_or_none(quiet_start), clock_or_none(quiet_end)
    return (start, end) if start is not None and end is not None and start != end else None


def window_words(name: str, window: Window) -> str:
    label = "personal quiet hours" if name == PERSONAL else f"quiet hours for {name}"
    return f"{label} {window[0]:%H:%M}-{window[1]:%H:%M} local"


@dataclass(frozen=True)
class QuietHold:
    """Why a message may not go at the time asked, and the first time it may (None: never, the
    windows cover the whole day)."""

    name: str  # the channel, or "personal"
    window: Window
    until: datetime | None


@dataclass(frozen=True)
class QuietHours:
    """The policy's quiet hours per channel, and the topics that go out at any hour."""

    by_channel: Mapping[str, Window]
    any_hour_topics: frozenset[str]

    @classmethod
    def of(cls, policy: Policy) -> QuietHours:
        by_channel = {ch: (w.start, w.end) for ch in channel_names()
                      if (w := policy.quiet_window(ch)) is not None}
        return cls(by_channel, frozenset(n for n, t in policy.topics.items() if t.bypass_quiet_hours))

    def hold(self, topic: str, channel: str, personal: Window | None, zone: ZoneInfo, at: datetime
             ) -> QuietHold | None:
        """None when a ``topic`` message on ``channel`` may go at ``at``; otherwise the window that
        holds it and when it ends, in the customer's ``zone``."""
        if topic in self.any_hour_topics:
            return None
        windows = quiet_windows(self.by_channel, channel, personal)
        if not windows:
            return None
        clock = at.astimezone(zone).time()
        for name, window in windows:
            if in_window(clock, window):
                return QuietHold(name, window, after_quiet_hours(at, [w for _, w in windows], zone))
        return None
