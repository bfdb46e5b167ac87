"""Channel length rules: SMS segments (GSM-7 / UCS-2), X weighted length and validity, email subject length.

Nothing is ever truncated: a text over its limit is reported with its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

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
# Characters twitter-text refuses in a post: byte-order marks, a non-character, and the
# directional formatting characters that can make a text read differently than it is stored.
X_INVALID_CHARACTERS = {
    "\ufffe": "U+FFFE", "\ufeff": "U+FEFF", "\uffff": "U+FFFF",
    **{chr(c): f"U+{c:04X}" for c in range(0x202A, 0x202F)},
}  # fmt: skip
_GRAPHEME = regex.compile(r"\X")


@dataclass(frozen=True)
class SmsCount:
    encoding: str  # GSM-7 or UCS-2
    units: int  # septets for GSM-7 (extension characters count two), UTF-16 code units for UCS-2
    segments: int


def sms_count(text: str) -> SmsCount:
    """Counts segments as Twilio's message-segment-calculator does, segment by segment.

    A character is never split across segments: not a GSM-7 escape pair (``€`` is two septets),
    not a surrogate pair (an emoji is two UTF-16 units), not a grapheme made of several code
    points (a flag, an accented letter written with a combining mark). So a split segment may
    carry fewer than 153 septets or 67 units.
    """
    if set(text) <= GSM7_ALL:
        encoding = GSM7
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in text]
    else:
        encoding = UCS2
        sizes = [len(g.encode("utf-16-le", "surrogatepass")) // 2 for g in _graphemes(text)]
    units = sum(sizes)
    single, multi = SMS_CAPACITY[encoding]
    if units <= single:
        return SmsCount(encoding, units, 0 if units == 0 else 1)
    segments, free = 1, multi
    for size in sizes:
        if size > free:
            segments, free = segments + 1, multi
        free -= size
    return SmsCount(encoding, units, segments)


def _graphemes(text: str) -> list[str]:
    # As the calculator does: CR LF is two characters, either may end a segment.
    return [part for g in _GRAPHEME.findall(text) for part in (["\r", "\n"] if g == "\r\n" else [g])]


def x_weighted_length(text: str) -> int:
    """X's weighted length: URLs count 23, CJK and emoji weigh two (the official twitter-text rules)."""
    # Imported on first use: loading twitter-text (its emoji regex, pkg_resources) takes 0.3-1 s,
    # which email and SMS dispatch should not pay before their first message.
    from twitter_text import parse_tweet

    return parse_tweet(text).weightedLength


def x_post_problem(text: str) -> str | None:
    """Why X would refuse the text as a post besides its length, or None (twitter-text's validity)."""
    if not text:
        return "empty: X refuses a post without text"
    found = sorted({name for char, name in X_INVALID_CHARACTERS.items() if char in text})
    if found:
        return f"contains {', '.join(found)}, which X refuses in a post"
    return None


@dataclass(frozen=True)
class Metrics:
    """Length figures of a rendered text, in the unit its channel is limited by."""

    channel: str
    length: int  # characters (email subject, DM, script) or the channel's own unit (see `unit`)
    unit: str = "chars"  # "chars", "units" (SMS), "weighted" (X post)
    limit: int | None = None
    encoding: str | None = None  # SMS only
    segments: int | None = None  # SMS only
    problem: str | None = None  # why the channel refuses the text whatever its length (X post)

    def describe(self) -> str:
        if self.problem is not None:
            return f"{self.channel}: {self.problem}"
        if self.segments is not None:
            noun = "segment" if self.segments == 1 else "segments"
            text = f"{self.channel}: {self.segments} {noun} ({self.encoding}, {self.length} chars)"
        elif self.unit == "weighted":
            text = f"{self.channel}: weighted length {self.length}"
        else:
            text = f"{self.channel}: {self.length} chars"
        return text if self.limit is None else f"{text}, max {self.limit}"

    @property
    def refused(self) -> bool:
        """Over the limit, or text the channel refuses."""
        return self.problem is not None or self.over_limit

    @property
    def over_limit(self) -> bool:
        if self.limit is None:
            return False
        return (self.segments if self.segments is not None else self.length) > self.limit

    def as_dict(self) -> dict[str, object]:
        return {"channel": self.channel, "length": self.length, "unit": self.unit, "limit": self.limit,
                "encoding": self.encoding, "segments": self.segments, "problem": self.problem}


def sms_metrics(text: str, max_segments: int) -> Metrics:
    count = sms_count(text)
    return Metrics("sms", count.units, "units", max_segments, count.encoding, count.segments)


def x_post_metrics(text: str, max_weighted: int = X_MAX_WEIGHTED) -> Metrics:
    weighted = x_weighted_length(text)
    return Metrics("social post", weighted, "weighted", max_weighted, problem=x_post_problem(text))


def chars_metrics(channel: str, text: str, max_chars: int | None) -> Metrics:
    return Metrics(channel, len(text), "chars", max_chars)
