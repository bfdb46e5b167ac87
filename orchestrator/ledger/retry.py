"""When a message that hit a transient provider error (or never reached one) is due again."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How long a message that hit a transient provider error waits before its next attempt."""

    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8

    def backoff(self, attempts: int) -> float:
        """Exponential: base, 2 x base, 4 x base... after the 1st, 2nd, 3rd attempt, capped."""
        return min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
