"""Time in the customer's zone: local send times, quiet hours, DST gaps and folds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.clock_times import parse_clock

Window = tuple[time, time]  # (start, end) local; end < start means overnight
_MAX_HOPS = 32


@lru_cache(maxsize=1024)
def zone_for(name: str | None) -> ZoneInfo:
    """The customer's zone; an unknown name falls back to UTC rather than failing a whole chunk."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_to_utc(day: date, clock: time, zone: ZoneInfo, fold: int = 0) -> datetime:
    """The UTC instant of a local wall-clock time.

    A time skipped by a DST jump (02:30 on a spring-forward night) maps to the equivalent
    instant after the jump (03:30): later, never earlier. In a repeated hour ``fold`` picks
    the first (0) or second (1) occurrence.
    """
    return datetime.combine(day, clock).replace(tzinfo=zone, fold=fold).astimezone(UTC)


def in_window(clock: time, window: Window) -> bool:
    start, end = window
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def _window_end(t: datetime, window: Window, zone: ZoneInfo) -> datetime:
    local = t.astimezone(zone)
    start, end = window
    day = local.date()
    if start > end and local.time() >= start:  # overnight window, before midnight
        day += timedelta(days=1)
    fold = local.fold if day == local.date() else 0
    for f in (fold, 1):
        candidate = local_to_utc(day, end, zone, f)
        if candidate > t:
            return candidate
    return t + timedelta(minutes=1)  # odd zone data: still make progress


def quiet_window_at(t: datetime, windows: Sequence[Window], zone: ZoneInfo) -> Window | None:
    clock = t.astimezone(zone).time()
    for window in windows:
        if in_window(clock, window):
            return window
    return None


def after_quiet_hours(t: datetime, windows: Sequence[Window], zone: ZoneInfo) -> datetime | None:
    """The first instant at or after ``t`` outside every window; None if the windows cover the day."""
    return _after_quiet_hours(t, tuple(windows), zone)


# Customers of one chunk share the clock and mostly a handful of zones: the answers repeat.
@lru_cache(maxsize=8192)
def _after_quiet_hours(t: datetime, windows: tuple[Window, ...], zone: ZoneInfo) -> datetime | None:
    for _ in range(_MAX_HOPS):
        window = quiet_window_at(t, windows, zone)
        if window is None:
            return t
        t = _window_end(t, window, zone)
    return None


class SendTimeError(ValueError):
    pass


@lru_cache(maxsize=256)
def parse_send_time(value: str) -> time | datetime | None:
    """None for "now", a local ``time`` for "HH:MM", a datetime (naive = local) for ISO."""
    text = (value or "now").strip()
    if text.lower() == "now":
        return None
    if len(text) <= 5 and ":" in text:
        try:
            return parse_clock(text)
        except ValueError:
            pass
    else:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    raise SendTimeError(f"send_time must be 'now', a local time 'HH:MM' or an ISO datetime, got {value!r}")


def next_local_time(clock: time, zone: ZoneInfo, not_before: datetime) -> datetime:
    """The first instant at or after ``not_before`` when the clock in ``zone`` reads ``clock``."""
    local = not_before.astimezone(zone)
    candidate = local_to_utc(local.date(), clock, zone)
    if candidate < not_before:
        candidate = local_to_utc(local.date() + timedelta(days=1), clock, zone)
    return candidate


@lru_cache(maxsize=8192)
def base_send_time(send_time: str, zone: ZoneInfo, not_before: datetime) -> datetime:
    """When the message is wanted, before quiet hours and caps: never before ``not_before``."""
    spec = parse_send_time(send_time)
    if spec is None:
        return not_before
    if isinstance(spec, time):
        return next_local_time(spec, zone, not_before)
    at = spec.replace(tzinfo=zone).astimezone(UTC) if spec.tzinfo is None else spec.astimezone(UTC)
    return max(at, not_before)
