"""Fixed-offset zones where it is a chosen hour now: tests that send at the real clock stay clear of
(or fall into) quiet hours whatever the hour they run."""

from __future__ import annotations

from orchestrator.models import utcnow

DAYTIME = 13  # local hour outside every quiet window
NIGHT = 1  # local hour inside the SMS and phone quiet hours (21:00-08:00)


def local_zone(hour: int) -> str:
    """A fixed-offset zone where the local time is now ``hour`` o'clock (give a margin of an hour)."""
    offset = (hour - utcnow().hour + 12) % 24 - 12  # -12..11
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # the Etc zones' signs are inverted
