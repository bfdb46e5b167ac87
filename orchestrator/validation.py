"""Checks and normalisation of customer fields, one function per kind of value.

Each function takes the raw value (already stripped, never blank) and returns the
normalised value or raises ``ValueError`` with a reason a person can act on. Reasons never
repeat an email address or a phone number.
"""

from __future__ import annotations

import math
import re
import zoneinfo
from datetime import date
from functools import lru_cache
from typing import Any

from channels.addresses import normalise_email, normalise_phone, parse_x_user_id, phone_regions
from channels.channel_set import channel_names
from orchestrator.clock_times import is_canonical_clock
from orchestrator.consent import FREQUENCIES

__all__ = ["normalise_email", "normalise_phone", "parse_x_user_id"]  # the address kinds' own rules

TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_LOCALE_RE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|\d{3}))?$")
_X_HANDLE_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")
_INT_RE = re.compile(r"^-?(0|[1-9]\d{0,14})$")  # no leading zeros: "01234" stays text (zip codes)
_FLOAT_RE = re.compile(r"^-?(0|[1-9]\d*)\.\d+$")


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true/false, yes/no or 1/0, got {str(value)[:40]!r}")


def check_country(value: str) -> str:
    region = value.strip().upper()
    if region not in phone_regions():
        raise ValueError(f"unknown country code {value[:40]!r} (ISO 3166 alpha-2, e.g. US, GB, DE)")
    return region


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    if value not in _time_zones():
        raise ValueError(f"unknown time zone {value[:64]!r} (use an IANA name such as Europe/Berlin)")
    return value


def normalise_locale(value: str) -> str:
    """``pt_br`` -> ``pt-BR``; language, optional script, optional region."""
    match = _LOCALE_RE.match(value)
    if not match:
        raise ValueError(f"not a locale {value[:40]!r} (expected e.g. en, de-DE, pt-BR, zh-Hant-TW)")
    language, script, region = match.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)


def parse_date(value: str, *, not_after: date | None = None) -> date:
    if not _DATE_RE.match(value):
        raise ValueError(f"expected a date as YYYY-MM-DD, got {value[:40]!r}")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a calendar date: {value!r}") from None
    if not_after is not None and parsed > not_after:
        raise ValueError(f"date {value} is in the future")
    return parsed


def parse_hhmm(value: str) -> str:
    if not is_canonical_clock(value):
        raise ValueError(f"expected a time as HH:MM (00:00-23:59), got {value[:40]!r}")
    return value


def parse_frequency(value: str) -> str:
    frequency = value.lower()
    if frequency not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}, got {value[:40]!r}")
    return frequency


def parse_channels(value: Any) -> list[str]:
    """``"sms|email"`` (or a list) -> ``["sms", "email"]``, known channels only, no repeats."""
    items = value if isinstance(value, list) else str(value).split("|")
    channels: list[str] = []
    for item in items:
        channel = str(item).strip().lower()
        if not channel:
            continue
        if channel not in channel_names():
            raise ValueError(f"unknown channel {channel[:40]!r} (channels: {', '.join(channel_names())})")
        if channel not in channels:
            channels.append(channel)
    return channels


def parse_x_handle(value: str) -> str:
    handle = value.removeprefix("@")
    if not _X_HANDLE_RE.match(handle):
        raise ValueError(f"not an X handle {value[:40]!r} (1-15 letters, digits or _)")
    return handle


def check_attribute_key(key: str) -> str:
    if not ATTRIBUTE_KEY_RE.match(key):
        raise ValueError(f"attribute key {key[:64]!r} may only use letters, digits and _")
    return key


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def check_storable(value: Any) -> None:
    """Refuses what a database cannot store faithfully, in any nested value.

    PostgreSQL text and JSON cannot hold a NUL character; an unpaired surrogate (``"\\ud800"``
    in JSON) is not Unicode text at all; NaN and Infinity are not JSON numbers. SQLite would
    take them and hand back something else, so both databases refuse the same rows.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError("contains a NUL character (\\x00), which the database cannot store")
            if not item.isascii() and _SURROGATE_RE.search(item):
                raise ValueError("contains an unpaired surrogate (not Unicode text)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{item} is not a number the database can store")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def typed_attribute(text: str) -> Any:
    """A CSV attribute value as int, float or bool when it reads as one, else the text itself."""
    if _INT_RE.match(text):
        return int(text)
    if _FLOAT_RE.match(text):
        number = float(text)
        return number if math.isfinite(number) else text
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text
