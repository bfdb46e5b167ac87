"""Local clock times written "HH:MM" (quiet hours, send times, rate windows): one parser for all."""

from __future__ import annotations

import re
from datetime import time
from typing import Any

_CLOCK_RE = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_clock(value: Any) -> time:
    """``"21:00"`` (or ``"9:30"``) -> time(21, 0); a ``time`` passes as it is; else a ValueError."""
    if isinstance(value, time):
        return value
    match = _CLOCK_RE.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"expected a local time 'HH:MM', got {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def clock_or_none(value: str | None) -> time | None:
    """A stored "HH:MM" as a time; None for an empty or unreadable one."""
    try:
        return parse_clock(value) if value else None
    except ValueError:
        return None


def is_canonical_clock(value: str) -> bool:
    """Exactly "HH:MM", two digits each (what the ledger and the preference centre store)."""
    try:
        return f"{parse_clock(value):%H:%M}" == value
    except ValueError:
        return False
