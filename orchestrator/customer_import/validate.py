"""One row checked and normalised: what it says about the customer, or why it is rejected.

Only the values given count: a blank value changes nothing. Addresses are normalised by
their channel's rules, attributes typed, consent and preference values parsed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Column

from orchestrator import validation
from orchestrator.consent import ANY
from orchestrator.contact_points import channel_columns, normalise_address
from orchestrator.customer_import.columns import (
    ATTR_PREFIX,
    CONSENT_COLUMNS,
    CONTACT_PREFIX,
    OPT_IN_SUFFIX,
    unknown_column,
)
from orchestrator.models import ConsentState, ContactPoint, Customer, table_of, utcnow
from orchestrator.settings import get_settings

MAX_FIELD_CHARS = 10_000  # any single value; most columns have a tighter limit from the model
MAX_ATTRIBUTES_CHARS = 20_000  # a customer's attributes as JSON
RAW_LIMITS = {"phone": 64}  # before normalisation to E.164 (which fits the column)

_CUSTOMER = table_of(Customer)
_POINT = table_of(ContactPoint)


def _declared_length(column: Column[Any]) -> int | None:
    """A text column's length (``Field(max_length=...)``); SQLModel's AutoString proxies it."""
    length = getattr(column.type, "length", None)
    return length if isinstance(length, int) else None


MAX_ADDRESS_CHARS = _declared_length(_POINT.c.address) or MAX_FIELD_CHARS


@dataclass
class ValidRow:
    """What one row says, checked and normalised: only the values it gives."""

    line: int
    external_id: str
    profile: dict[str, Any]
    attributes: dict[str, Any]
    consent: dict[tuple[str, str], str]
    preferences: dict[str, Any]
    contact_points: dict[str, str] = field(default_factory=dict)  # channel -> address


class RowError(ValueError):
    """Why a row is rejected, and the field at fault."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


# Longest accepted text per column: the model's column length, or a raw-input limit.
_TEXT_LIMITS: dict[str, int] = {
    **{c.name: length for c in _CUSTOMER.c if (length := _declared_length(c))},
    **RAW_LIMITS,
}


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RowError(name, f"expected text, got {type(value).__name__}")
    text = value if isinstance(value, str) else str(value)
    limit = _TEXT_LIMITS.get(name, MAX_FIELD_CHARS)
    if len(text) > limit:
        raise RowError(name, f"too long: {len(text)} characters, at most {limit}")
    return text


class RowValidator:
    def __init__(self) -> None:
        settings = get_settings()
        self.default_region = settings.default_phone_region
        latest = (utcnow() + timedelta(days=1)).date()  # "today" anywhere on Earth
        self.profile_parsers: dict[str, Callable[[str], Any]] = {
            "name": str,
            "email": validation.normalise_email,
            "x_user_id": validation.parse_x_user_id,
            "x_handle": validation.parse_x_handle,
            "timezone": validation.check_timezone,
            "locale": validation.normalise_locale,
            "tier": str,
            "customer_since": lambda v: validation.parse_date(v, not_after=latest),
        }

    def validate(self, line: int, raw: dict[str, Any]) -> ValidRow:
        # Only the values given: blank ones change nothing. Text is stripped once, here.
        given: dict[str, Any] = {}
        for name, value in raw.items():
            _checked(name, validation.check_storable, value)
            if isinstance(value, str):
                if len(value) > MAX_FIELD_CHARS:
                    raise RowError(name, f"too long: {len(value)} characters, at most {MAX_FIELD_CHARS}")
                value = value.strip()
                if value:
                    given[name] = value
            elif value is not None:
                given[name] = value
        raw = given
        if "external_id" not in raw:
            raise RowError("external_id", "required: every customer needs an external_id")
        external_id = _text("external_id", raw["external_id"])
        profile = self._profile(raw)
        return ValidRow(
            line=line,
            external_id=external_id,
            profile=profile,
            attributes=self._attributes(raw),
            consent=self._consent(raw),
            preferences=self._preferences(raw),
            contact_points=self._contacts(raw, profile),
        )

    def _contacts(self, raw: dict[str, Any], profile: dict[str, Any]) -> dict[str, str]:
        """``contact.<channel>`` columns; profile-kind addresses go into ``profile``."""
        points: dict[str, str] = {}
        columns = None
        for name, value in raw.items():
            if not name.startswith(CONTACT_PREFIX) or unknown_column(name) is not None:
                continue
            columns = columns or channel_columns()
            channel = name[len(CONTACT_PREFIX) :]
            text = _text(name, value) if not isinstance(value, int) else f"+{value}"
            try:
                address = normalise_address(channel, text, self._region(raw))
            except ValueError as exc:  # as in _checked: any ValueError rejects the row on this column
                raise RowError(name, str(exc)) from None
            if len(address) > MAX_ADDRESS_CHARS:
                raise RowError(name, f"too long: at most {MAX_ADDRESS_CHARS} characters")
            column = columns[channel]
            if column is None:
                points[channel] = address
            elif profile.get(column, address) != address:
                raise RowError(name, f"differs from the {column} column in the same row")
            else:
                profile[column] = address
        return points

    def _region(self, raw: dict[str, Any]) -> str:
        if "country" in raw:
            return _checked("country", validation.check_country, _text("country", raw["country"]))
        return self.default_region

    def _profile(self, raw: dict[str, Any]) -> dict[str, Any]:
        profile: dict[str, Any] = {}
        for name, parse in self.profile_parsers.items():
            if name in raw:
                profile[name] = _checked(name, parse, _text(name, raw[name]))
        if "phone" in raw:
            region = self._region(raw)
            phone = _text("phone", raw["phone"]) if not isinstance(raw["phone"], int) else f"+{raw['phone']}"
            profile["phone"] = _checked("phone", lambda v: validation.normalise_phone(v, region), phone)
        return profile

    def _attributes(self, raw: dict[str, Any]) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        given = raw.get("attributes")
        if given is not None:
            if isinstance(given, str):
                try:
                    given = json.loads(given)
                except json.JSONDecodeError as exc:
                    raise RowError("attributes", f"not valid JSON: {exc.msg}") from None
            if not isinstance(given, dict):
                raise RowError("attributes", "must be a JSON object of key: value")
            for key, value in given.items():
                _checked("attributes", validation.check_attribute_key, key)
                attributes[key] = value
        for name, value in raw.items():
            if name.startswith(ATTR_PREFIX) and unknown_column(name) is None:
                key = name[len(ATTR_PREFIX) :]
                # CSV text is typed (7 -> int); JSON Lines values already carry their type
                attributes[key] = validation.typed_attribute(value) if isinstance(value, str) else value
        _checked("attributes", validation.check_storable, attributes)  # JSON text may escape a NUL
        if _json_size_may_exceed(attributes) and len(json.dumps(attributes)) > MAX_ATTRIBUTES_CHARS:
            raise RowError("attributes", f"too large: more than {MAX_ATTRIBUTES_CHARS} characters as JSON")
        return attributes

    def _consent(self, raw: dict[str, Any]) -> dict[tuple[str, str], str]:
        consent: dict[tuple[str, str], str] = {}
        for name, value in raw.items():
            key = CONSENT_COLUMNS.get(name)
            if key is None and name.endswith(OPT_IN_SUFFIX) and unknown_column(name) is None:
                key = (name[: -len(OPT_IN_SUFFIX)], ANY)
            if key is not None:
                opted_in = _checked(name, validation.parse_bool, value)
                consent[key] = (ConsentState.opted_in if opted_in else ConsentState.opted_out).value
        return consent

    def _preferences(self, raw: dict[str, Any]) -> dict[str, Any]:
        prefs: dict[str, Any] = {}
        if "preferred_channels" in raw:
            prefs["preferred_channels"] = _checked(
                "preferred_channels", validation.parse_channels, raw["preferred_channels"]
            )
        if "frequency" in raw:
            prefs["frequency"] = _checked(
                "frequency", validation.parse_frequency, _text("frequency", raw["frequency"])
            )
        for name in ("quiet_start", "quiet_end"):
            if name in raw:
                prefs[name] = _checked(name, validation.parse_hhmm, _text(name, raw[name]))
        if ("quiet_start" in prefs) != ("quiet_end" in prefs):
            missing = "quiet_end" if "quiet_start" in prefs else "quiet_start"
            raise RowError(missing, "quiet_start and quiet_end go together: give both or neither")
        if "quiet_start" in prefs and prefs["quiet_start"] == prefs["quiet_end"]:
            raise RowError("quiet_end", "quiet hours must not start and end at the same time")
        if "do_not_contact" in raw:
            prefs["do_not_contact"] = _checked("do_not_contact", validation.parse_bool, raw["do_not_contact"])
        return prefs


def _json_size_may_exceed(attributes: dict[str, Any]) -> bool:
    """A cheap bound: JSON text of scalars is never more than ~6x their text (escapes)."""
    if any(isinstance(v, dict | list) for v in attributes.values()):
        return True
    return sum(len(str(k)) + len(str(v)) + 6 for k, v in attributes.items()) * 6 > MAX_ATTRIBUTES_CHARS


def _checked(name: str, parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except ValueError as exc:
        raise RowError(name, str(exc)) from None
