"""What became of each dispatched message: the ledger update for a provider result, and the report.

A provider result maps to exactly one ledger change:

- accepted            -> ``sent`` with the provider's message id;
- ``Transient``       -> ``deferred`` to ``now + max(retry_after, backoff(attempts))``, or ``failed``
                         (``gave_up:attempts`` / ``gave_up:deadline``) once retrying is pointless;
- ``Permanent``       -> ``failed`` with ``permanent:<reason>``.

Nothing here touches the database; ``orchestrator.dispatch`` writes the changes in bulk.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from channels.base import Permanent, PermanentReason, SendResult, Transient
from orchestrator.models import MessageStatus
from orchestrator.privacy import redact_text

# Outcomes a dispatch run reports, per channel, in this order.
OUTCOMES = ("sent", "deferred", "failed", "suppressed", "reconcile")


@dataclass(frozen=True)
class RetryPolicy:
    """How long a message that hit a transient provider error waits before its next attempt."""

    base_seconds: float = 60.0
    cap_seconds: float = 3600.0
    max_attempts: int = 8

    def backoff(self, attempts: int) -> float:
        """Exponential: base, 2 x base, 4 x base... after the 1st, 2nd, 3rd attempt, capped."""
        return min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))


@dataclass
class LedgerChange:
    """The new state of one claimed message. ``reason`` is a machine-readable code for failures."""

    message_id: int
    status: MessageStatus
    reason: str | None = None  # e.g. permanent:invalid_address, render_error, gave_up:deadline
    detail: str = ""  # human text, personal data masked
    send_at: datetime | None = None  # deferred: the next attempt
    provider: str | None = None
    provider_message_id: str | None = None
    attempts_delta: int = 0  # -1 gives back an attempt that never reached the provider


@dataclass(frozen=True)
class Failure:
    """A message that ended without being sent (failed or suppressed), for the report and fallbacks."""

    message_id: int
    customer_id: int
    channel: str
    topic: str
    status: str  # "failed" or "suppressed"
    reason: str
    detail: str = ""


def change_for_result(
    result: SendResult,
    *,
    attempts: int,
    deadline: datetime | None,
    now: datetime,
    retry: RetryPolicy,
) -> LedgerChange:
    """The ledger change for one provider result; ``attempts`` already counts this attempt."""
    error = result.error
    if result.ok:
        return LedgerChange(
            result.message_id,
            MessageStatus.sent,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
        )
    if isinstance(error, Permanent) and error.reason is not PermanentReason.unauthorized:
        return LedgerChange(
            result.message_id,
            MessageStatus.failed,
            reason=f"permanent:{error.reason.value}",
            detail=redact_text(error.detail),
            provider=result.provider,
        )
    # Transient errors, and bad credentials (the message is fine: fix the set-up, then it goes out).
    if isinstance(error, Permanent):
        why, retry_after = f"unauthorized: {error.detail}".rstrip(": "), None
    elif isinstance(error, Transient):
        why, retry_after = error.reason, error.retry_after
    else:
        why, retry_after = f"provider returned status {result.status} without an error", None
    return retry_later(
        result.message_id, why, attempts=attempts, deadline=deadline, now=now, retry=retry,
        retry_after=retry_after, provider=result.provider,
    )


def retry_later(
    message_id: int,
    why: str,
    *,
    attempts: int,
    deadline: datetime | None,
    now: datetime,
    retry: RetryPolicy,
    retry_after: float | None = None,
    provider: str | None = None,
    reason: str = "transient",
) -> LedgerChange:
    """Deferred to the next attempt, or failed when attempts or the deadline have run out."""
    detail = redact_text(why)
    if attempts >= retry.max_attempts:
        return LedgerChange(
            message_id, MessageStatus.failed, reason="gave_up:attempts",
            detail=f"{attempts} attempts, last: {detail}", provider=provider,
        )
    next_at = now + timedelta(seconds=max(retry_after or 0.0, retry.backoff(attempts)))
    if deadline is not None and next_at > deadline:
        return LedgerChange(
            message_id, MessageStatus.failed, reason="gave_up:deadline",
            detail=f"next attempt would be after the deadline, last: {detail}", provider=provider,
        )
    return LedgerChange(
        message_id, MessageStatus.deferred, reason=reason, detail=detail, send_at=next_at,
        provider=provider,
    )


@dataclass
class DispatchReport:
    """Counts per channel and outcome, every message that was not sent, and what needs a look."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    reconcile: list[int] = field(default_factory=list)  # outcome unknown: an operator checks the provider
    configuration_errors: dict[str, str] = field(default_factory=dict)  # channel -> what is wrong

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
        return self

    def rows(self) -> list[dict[str, int | str]]:
        """One row per channel with a column per outcome (for tables and artifacts)."""
        return [
            {"channel": channel, **{outcome: self.counts[channel][outcome] for outcome in OUTCOMES}}
            for channel in sorted(self.counts)
        ]

    def reasons(self) -> Counter[str]:
        """How many messages were not sent, per reason code."""
        return Counter(f.reason for f in self.failures)
