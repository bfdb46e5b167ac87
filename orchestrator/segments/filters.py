"""The filter language of segments, compiled to a SQLAlchemy condition on the customer table.

A filter is a mapping. Each entry is ANDed with the others and is one of:

- ``and: [filter, ...]``, ``or: [filter, ...]``, ``not: filter`` (nest freely);
- ``has: email`` (or any installed channel: ``sms``, ``phone``, ``social``, ``whatsapp``..., or a
  list of them): the customer has an address for that channel (consent and suppression are the
  policy's business);
- ``<field>: {operator: value, ...}`` where field is a customer column (``FIELDS``) or an
  attribute (``attributes.<key>`` or ``attr.<key>``, key made of letters, digits and _),
  and the operators are ``equals``, ``not_equals``, ``in`` (a list), ``range`` (``min`` and/or
  ``max``, inclusive, numbers or dates), ``exists`` (true/false) and ``contains`` (a
  case-insensitive substring; for a list attribute, an element). ``<field>: value`` is short
  for ``equals``.

``not_equals`` and ``not`` also match customers who have no value at all. ``contains`` folds
case for every letter on PostgreSQL and for ASCII letters on SQLite (SQLite's ``lower``).

Dates are ``YYYY-MM-DD`` or relative to today (UTC): ``today``, ``-3y``, ``+7d``, ``-6m``, ``-2w``.
Values are always bound parameters and field names come from a whitelist, so nothing in a
segments file can change the SQL that runs. A mistake is a ``SegmentError`` that names the
segment and the path of the offending key; nothing is executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, true

from channels.channel_set import UnknownChannel
from orchestrator.contact_points import reachable
from orchestrator.models import Customer, table_of, utcnow
from orchestrator.segments.attribute_sql import AttributeArrayContains, AttributeValue

_CUSTOMER = table_of(Customer)

# Customer columns a segment may filter on, with the kind of value they hold.
FIELDS: dict[str, str] = {
    "id": "number", "external_id": "text", "name": "text", "email": "text", "phone": "text",
    "x_user_id": "text", "x_handle": "text", "timezone": "text", "locale": "text", "tier": "text",
    "customer_since": "date", "created_at": "datetime", "updated_at": "datetime",
}  # fmt: skip
OPERATORS = ("equals", "not_equals", "in", "range", "exists", "contains")
ATTRIBUTE_PREFIXES = ("attributes.", "attr.")
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
_RELATIVE_DATE_RE = re.compile(r"^([+-])(\d{1,4})([dwmy])$")


MAX_FILTER_DEPTH = 50
# YAML aliases let a short file repeat a filter inside itself until it holds billions of
# conditions: a filter is counted (up to this many) before anything is compiled.
MAX_FILTER_CONDITIONS = 2_000


class SegmentError(ValueError):
    """A segment that does not exist or whose filter cannot be compiled."""


def compile_filter(filter: dict, *, segment: str = "<inline>") -> ColumnElement[bool]:
    """The filter as a SQLAlchemy boolean expression (never NULL, so ``not`` is exact)."""
    _check_size(filter, segment)
    return _Compiler(segment, utcnow().date()).node(filter, "filter")


def _check_size(spec: Any, segment: str) -> None:
    """Counts mapping entries and lists, and their depth, stopping at the first limit passed."""
    count, stack = 0, [(spec, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            count += 1
            stack.extend((v, depth) for v in item if isinstance(v, dict | list))
        if depth > MAX_FILTER_DEPTH:
            raise SegmentError(f"segment {segment!r}: filter: nested deeper than {MAX_FILTER_DEPTH} levels")
        if count > MAX_FILTER_CONDITIONS or len(stack) > MAX_FILTER_CONDITIONS:
            raise SegmentError(f"segment {segment!r}: filter: more than {MAX_FILTER_CONDITIONS} conditions "
                               "(YAML aliases repeating a filter?): refused")


class _Compiler:
    def __init__(self, segment: str, today: date) -> None:
        self.segment = segment
        self.today = today

    def error(self, path: str, message: str) -> SegmentError:
        return SegmentError(f"segment {self.segment!r}: {path}: {message}")

    def node(self, spec: Any, path: str) -> ColumnElement[bool]:
        if path.count(".") > MAX_FILTER_DEPTH:  # a hostile filter must not exhaust the stack
            raise self.error(path[:80] + "...", f"nested deeper than {MAX_FILTER_DEPTH} levels")
        if not isinstance(spec, dict):
            raise self.error(path, f"expected a mapping of conditions, got {type(spec).__name__}")
        parts = [self.entry(str(key), value, f"{path}.{key}") for key, value in spec.items()]
        if not parts:
            return true()
        return parts[0] if len(parts) == 1 else and_(*parts)

    def entry(self, key: str, value: Any, path: str) -> ColumnElement[bool]:
        if key in ("and", "or"):
            if not isinstance(value, list) or not value:
                raise self.error(path, f"'{key}' needs a non-empty list of filters")
            parts = [self.node(item, f"{path}[{i}]") for i, item in enumerate(value)]
            return and_(*parts) if key == "and" else or_(*parts)
        if key == "not":
            return not_(self.node(value, path))
        if key == "has":
            return self.has(value, path)
        target = self.target(key, path)
        conditions = value if isinstance(value, dict) else {"equals": value}
        if not conditions:
            raise self.error(path, "no operator given")
        parts = [self.operator(target, str(op), arg, f"{path}.{op}") for op, arg in conditions.items()]
        return parts[0] if len(parts) == 1 else and_(*parts)

    def has(self, value: Any, path: str) -> ColumnElement[bool]:
        channels = value if isinstance(value, list) else [value]
        parts = []
        for channel in channels:
            if not isinstance(channel, str):
                raise self.error(path, f"unknown channel {channel!r}")
            try:
                parts.append(reachable(str(channel)))
            except UnknownChannel as exc:
                raise self.error(path, str(exc)) from None
        if not parts:
            raise self.error(path, "'has' needs a channel")
        return and_(*parts)

    def target(self, key: str, path: str) -> _Target:
        for prefix in ATTRIBUTE_PREFIXES:
            if key.startswith(prefix):
                name = key[len(prefix) :]
                if not ATTRIBUTE_KEY_RE.match(name):
                    raise self.error(path, "attribute keys may only use letters, digits and _")
                return _Target(key, None, name)
        if key not in FIELDS:
            raise self.error(path, f"unknown field (fields: {', '.join(FIELDS)}, attributes.<key>)")
        return _Target(key, FIELDS[key], None)

    # Operators ------------------------------------------------------------------------

    def operator(self, target: _Target, op: str, arg: Any, path: str) -> ColumnElement[bool]:
        if op == "equals":
            return self.equals(target, arg, path)
        if op == "not_equals":
            return not_(self.equals(target, arg, path))
        if op == "in":
            if not isinstance(arg, list) or not arg:
                raise self.error(path, "'in' needs a non-empty list of values")
            return or_(*(self.equals(target, item, f"{path}[{i}]") for i, item in enumerate(arg)))
        if op == "exists":
            if not isinstance(arg, bool):
                raise self.error(path, "'exists' takes true or false")
            present = _present(target.column()) if target.kind == "text" else target.any_value().is_not(None)
            return present if arg else not_(present)
        if op == "contains":
            if not isinstance(arg, str) or not arg:
                raise self.error(path, "'contains' needs a non-empty text value")
            if target.kind not in (None, "text"):
                raise self.error(path, f"'contains' works on text, {target.name} holds {target.kind}s")
            if target.kind == "text":
                return _not_null_and(target.column(), target.column().icontains(arg, autoescape=True))
            text_value = target.attribute_value("text")
            in_text = _not_null_and(text_value, text_value.icontains(arg, autoescape=True))
            return or_(in_text, target.attribute_array_holding(arg))
        if op == "range":
            return self.range(target, arg, path)
        raise self.error(path, f"unknown operator (operators: {', '.join(OPERATORS)})")

    def equals(self, target: _Target, value: Any, path: str) -> ColumnElement[bool]:
        if value is None or isinstance(value, list | dict):
            raise self.error(path, "expected a single value (use 'exists: false' for a missing value)")
        if target.kind is None:
            kind = "bool" if isinstance(value, bool) else "number" if _is_number(value) else "text"
            if isinstance(value, date):
                kind, value = "text", value.isoformat()
            expr = target.attribute_value(kind)
            return _not_null_and(expr, expr == value)
        column = target.column()
        return _not_null_and(column, column == self.typed(target, value, path))

    def typed(self, target: _Target, value: Any, path: str) -> Any:
        kind = target.kind
        if kind == "text":
            if not isinstance(value, str):
                raise self.error(path, f"{target.name} holds text: quote the value")
            return value
        if kind == "number":
            if not _is_number(value):
                raise self.error(path, f"{target.name} holds numbers, got {value!r}")
            return value
        day = self.date_value(value, path)
        return datetime.combine(day, datetime.min.time(), UTC) if kind == "datetime" else day

    def range(self, target: _Target, arg: Any, path: str) -> ColumnElement[bool]:
        if not isinstance(arg, dict) or not arg or set(arg) - {"min", "max"}:
            raise self.error(path, "'range' takes 'min' and/or 'max'")
        bounds = {k: v for k, v in arg.items() if v is not None}
        if not bounds:
            raise self.error(path, "'range' needs a min or a max value")
        if target.kind is None:
            numeric = all(_is_number(v) for v in bounds.values())
            if numeric:
                expr: Any = target.attribute_value("number")
            else:  # dates stored as ISO text compare correctly as text
                bounds = {k: self.date_value(v, f"{path}.{k}").isoformat() for k, v in bounds.items()}
                expr = target.attribute_value("text")
        elif target.kind == "text":
            raise self.error(path, f"'range' needs numbers or dates, {target.name} holds text")
        else:
            expr = target.column()
            bounds = {k: self.typed(target, v, f"{path}.{k}") for k, v in bounds.items()}
        if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
            raise self.error(path, "min is greater than max")
        parts = [expr >= bounds["min"]] if "min" in bounds else []
        parts += [expr <= bounds["max"]] if "max" in bounds else []
        return _not_null_and(expr, and_(*parts))

    def date_value(self, value: Any, path: str) -> date:
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            if value == "today":
                return self.today
            match = _RELATIVE_DATE_RE.match(value)
            if match:
                sign, amount, unit = match.groups()
                return _shift(self.today, int(amount) * (1 if sign == "+" else -1), unit)
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise self.error(path, f"expected a date (YYYY-MM-DD, today, -3y, +7d, -6m, -2w), got {value!r}")


@dataclass
class _Target:
    name: str
    kind: str | None  # None: an attribute, typed by the value it is compared with
    attribute: str | None

    def column(self) -> Any:
        return _CUSTOMER.c[self.name]

    def any_value(self) -> Any:
        return self.column() if self.attribute is None else AttributeValue(self.attribute, "kind")

    def attribute_value(self, kind: str) -> AttributeValue:
        return AttributeValue(self._attribute_key(), kind)

    def attribute_array_holding(self, text: str) -> AttributeArrayContains:
        return AttributeArrayContains(self._attribute_key(), text)

    def _attribute_key(self) -> str:
        if self.attribute is None:  # the compiler asks only when kind is None: an attribute
            raise TypeError(f"{self.name} is a column, not an attribute")
        return self.attribute


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _not_null_and(expr: Any, condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # FALSE AND NULL is FALSE: a missing value never makes the filter NULL, so NOT stays exact.
    return and_(expr.is_not(None), condition)


def _present(column: Any) -> ColumnElement[bool]:
    return and_(column.is_not(None), column != "")


def _shift(day: date, amount: int, unit: str) -> date:
    if unit == "d":
        return day + timedelta(days=amount)
    if unit == "w":
        return day + timedelta(weeks=amount)
    months = amount * (12 if unit == "y" else 1)
    year, month = divmod(day.month - 1 + months, 12)
    target_year, target_month = day.year + year, month + 1
    for candidate in (day.day, 30, 29, 28):  # the 31st of a shorter month becomes its last day
        try:
            return date(target_year, target_month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")
