"""Rates with their denominators stated, and the sender-health flags built on them.

Every rate says what it divides by, so nobody compares an open rate over "sent" with one over
"delivered". A rate with nothing to divide by is ``None`` (shown as "-"), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class Rate:
    name: str
    numerator: str  # a funnel stage
    denominator: str  # a funnel stage
    meaning: str


RATES = (
    Rate("delivery_rate", "delivered", "sent", "delivered / sent"),
    Rate("open_rate", "opened", "delivered", "unique opens by people / delivered (machine opens left out)"),
    Rate("click_rate", "clicked", "delivered", "unique clicks / delivered"),
    Rate("bounce_rate", "bounced", "sent", "bounces / sent"),
    Rate("spam_report_rate", "spam_reports", "delivered", "spam reports / delivered"),
    Rate("unsubscribe_rate", "unsubscribed", "delivered", "unsubscribes / delivered"),
    Rate("reply_rate", "replies", "delivered", "messages replied to / delivered"),
)
RATE_BY_NAME = {rate.name: rate for rate in RATES}


def ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def rates(counts: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {r.name: {"value": ratio(counts[r.numerator], counts[r.denominator]),
                     "numerator": counts[r.numerator], "denominator": counts[r.denominator],
                     "of": r.meaning} for r in RATES}


@dataclass(frozen=True)
class HealthRule:
    rate: str
    threshold: float
    source: str


# Published sender rules (Gmail and Yahoo, 2024): keep spam reports below 0.3%; bounces at 2%
# or more are the usual sign of a stale list.
HEALTH_RULES = (
    HealthRule("spam_report_rate", 0.003, "Gmail/Yahoo sender rules: spam reports below 0.3%"),
    HealthRule("bounce_rate", 0.02, "bounces at 2% or more of sent"),
)
HEALTH_DAYS = 30


def health_flags(counts_by_channel: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """Each rule checked for each channel; ``raised`` when the rate is at or above the threshold."""
    flags = []
    for channel, counts in sorted(counts_by_channel.items()):
        for rule in HEALTH_RULES:
            rate = RATE_BY_NAME[rule.rate]
            numerator, denominator = counts[rate.numerator], counts[rate.denominator]
            value = ratio(numerator, denominator)
            flags.append({"channel": channel, "rule": rule.rate, "value": value, "threshold": rule.threshold,
                          "numerator": numerator, "denominator": denominator,
                          "of": rate.meaning, "window_days": HEALTH_DAYS, "source": rule.source,
                          "raised": denominator > 0
                          and numerator >= Fraction(str(rule.threshold)) * denominator})
    return flags
