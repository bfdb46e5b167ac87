"""Channel length rules: SMS segments (GSM-7 / UCS-2), X weighted length, email subject length.

Nothing is ever truncated: a text over its limit is reported with its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic character set (one septet each). Lowercase ç is not in it; Ç and é are.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: an escape septet plus the character, so each counts two.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

GSM7 = "GSM-7"
UCS2 = "UCS-2"
# (single-segment capacity, per-segment capacity when concatenated)
SMS_CAPACITY = {GSM7: (160, 153), UCS2: (70, 67)}

X_MAX_WEIGHTED = 280


@dataclass(frozen=True)
class SmsCount:
    encoding: str  # GSM-7 or UCS-2
    units: int  # septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2
    segments: int


def sms_count(text: str) -> SmsCount:
    chars = set(text)
    if chars <= GSM7_ALL:
        encoding = GSM7
        units = len(text) + sum(text.count(c) for c in chars & GSM7_EXTENSION)
    else:
        encoding = UCS2
        # Characters outside the Basic Multilingual Plane (most emoji) take two UTF-16 units.
        units = len(text) + sum(1 for c in text if ord(c) > 0xFFFF)
    single, multi = SMS_CAPACITY[encoding]
    segments = 0 if units == 0 else 1 if units <= single else -(-units // multi)
    return SmsCount(encoding, units, segments)


def x_weighted_length(text: str) -> int:
    """X's weighted length: URLs count 23, CJK and emoji weigh two (the official twitter-text rules)."""
    # Imported on first use: loading twitter-text (its emoji regex, pkg_resources) takes 0.3-1 s,
    # which email and SMS dispatch should not pay before their first message.
    from twitter_text import parse_tweet

    return parse_tweet(text).weightedLength


@dataclass(frozen=True)
class Metrics:
    """Length figures of a rendered text, in the unit its channel is limited by."""

    channel: str
    length: int  # characters (email subject, DM, script) or the channel's own unit (see `unit`)
    unit: str = "chars"  # "chars", "units" (SMS), "weighted" (X post)
    limit: int | None = None
    encoding: str | None = None  # SMS only
    segments: int | None = None  # SMS only

    def describe(self) -> str:
        if self.segments is not None:
            noun = "segment" if self.segments == 1 else "segments"
            text = f"{self.channel}: {self.segments} {noun} ({self.encoding}, {self.length} chars)"
        elif self.unit == "weighted":
            text = f"{self.channel}: weighted length {self.length}"
        else:
            text = f"{self.channel}: {self.length} chars"
        return text if self.limit is None else f"{text}, max {self.limit}"

    @property
    def over_limit(self) -> bool:
        if self.limit is None:
            return False
        return (self.segments if self.segments is not None else self.length) > self.limit

    def as_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "length": self.length, "unit": self.unit, "limit": self.limit,
                "encoding": self.encoding, "segments": self.segments}


def sms_metrics(text: str, max_segments: int) -> Metrics:
    count = sms_count(text)
    return Metrics("sms", count.units, "units", max_segments, count.encoding, count.segments)


def x_post_metrics(text: str, max_weighted: int = X_MAX_WEIGHTED) -> Metrics:
    return Metrics("social post", x_weighted_length(text), "weighted", max_weighted)


def chars_metrics(channel: str, text: str, max_chars: int | None) -> Metrics:
    return Metrics(channel, len(text), "chars", max_chars)
