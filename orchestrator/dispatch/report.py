"""The dispatch report: counts per channel and outcome, what was not sent and why, what needs a look."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.ledger.changes import Failure

# Outcomes a dispatch run reports, per channel, in this order.
OUTCOMES = ("sent", "deferred", "failed", "suppressed", "reconcile")


@dataclass
class DispatchReport:
    """Counts per channel and outcome, every message that was not sent, and what needs a look."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    reconcile: list[int] = field(default_factory=list)  # outcome unknown: an operator checks the provider
    configuration_errors: dict[str, str] = field(default_factory=dict)  # channel -> what is wrong
    paced: Counter[str] = field(default_factory=Counter)  # pace:<rate> -> times a message waited for it
    # Messages waiting for their rate, by id: (channel, when they are expected to go). Counted as
    # ``deferred`` only if the dispatch ends before they went (``settle_waiting``).
    waiting: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    # Those still waiting when the dispatch ended (counted as deferred): another dispatch may take
    # them over (``take_waiting``).
    left_waiting: dict[int, tuple[str, datetime]] = field(default_factory=dict)

    def add(self, channel: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(channel, Counter())[outcome] += n

    def total(self, outcome: str | None = None) -> int:
        return sum(c[outcome] if outcome else sum(c.values()) for c in self.counts.values())

    @property
    def processed(self) -> int:
        return self.total()

    def merge(self, other: DispatchReport) -> DispatchReport:
        for channel, counter in other.counts.items():
            self.counts.setdefault(channel, Counter()).update(counter)
        self.failures.extend(other.failures)
        self.reconcile.extend(other.reconcile)
        self.configuration_errors.update(other.configuration_errors)
        self.paced.update(other.paced)
        self.left_waiting.update(other.left_waiting)
        return self

    def next_paced(self) -> datetime | None:
        """When the first message still waiting for its rate is expected to go."""
        return min((at for _, at in self.waiting.values()), default=None)

    def forget_waiting(self, due_by: datetime, kept: set[int]) -> None:
        """Stops waiting for the messages due by ``due_by`` that a claim did not return (``kept``)."""
        for mid in [mid for mid, (_, at) in self.waiting.items() if at <= due_by and mid not in kept]:
            del self.waiting[mid]

    def settle_waiting(self) -> None:
        """The dispatch is over: messages still waiting for their rate count as deferred."""
        for channel, _ in self.waiting.values():
            self.add(channel, "deferred")
        self.left_waiting.update(self.waiting)
        self.waiting.clear()

    def take_waiting(self) -> dict[int, tuple[str, datetime]]:
        """The messages left waiting for their rate, handed to a dispatch that follows them (no
        longer counted here as deferred: that dispatch reports what became of them)."""
        taken, self.left_waiting = self.left_waiting, {}
        for channel, _ in taken.values():
            self.counts[channel]["deferred"] -= 1
        return taken

    def rows(self) -> list[dict[str, int | str]]:
        """One row per channel with a column per outcome (for tables and artifacts)."""
        return [
            {"channel": channel, **{outcome: self.counts[channel][outcome] for outcome in OUTCOMES}}
            for channel in sorted(self.counts)
        ]

    def reasons(self) -> Counter[str]:
        """How many messages were not sent, per reason code."""
        return Counter(f.reason for f in self.failures)
