"""Named audiences: filters declared in ``segments.yaml``, compiled to SQL the database runs.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    Table,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnClause

from channels.channel_set import UnknownChannel
from orchestrator.contact_points import reachable
from orchestrator.models import Customer, utcnow
from orchestrator.settings import get_settings

_CUSTOMER: Table = Customer.__table__  # type: ignore[attr-defined]

# Customer columns a segment may filter on, with the kind of value they hold.
FIELDS: dict[str, str] = {
    "id": "number", "external_id": "text", "name": "text", "email": "text", "phone": "text",
    "x_user_id": "text", "x_handle": "text", "timezone": "text", "locale": "text", "tier": "text",
    "customer_since": "date", "created_at": "datetime", "updated_at": "datetime",
}  # fmt: skip
OPERATORS = ("equals", "not_equals", "in", "range", "exists", "contains")
ATTRIBUTE_PREFIXES = ("attributes.", "attr.")
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
SEGMENT_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_RELATIVE_DATE_RE = re.compile(r"^([+-])(\d{1,4})([dwmy])$")


MAX_FILTER_DEPTH = 50
# YAML aliases let a short file repeat a filter inside itself until it holds billions of
# conditions: a filter is counted (up to this many) before anything is compiled.
MAX_FILTER_CONDITIONS = 2_000


class SegmentError(ValueError):
    """A segment that does not exist or whose filter cannot be compiled."""


@dataclass
class Segment:
    name: str
    description: str
    filter: dict = field(default_factory=dict)


ALL = Segment("all", "Every customer", {})


# Loading ---------------------------------------------------------------------------------


def load_segments(path: Path | None = None) -> dict[str, Segment]:
    """The built-in ``all`` plus every segment in the file (default: settings' segments_path).

    Every filter is compiled once here, so a broken file fails when it is loaded.
    """
    segments = {ALL.name: ALL}
    source = Path(path) if path is not None else get_settings().segments_path
    if not source.exists():
        if path is not None:
            raise SegmentError(f"segments file not found: {source}")
        return segments
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SegmentError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise SegmentError(f"{source}: nested too deeply to read") from None
    entries = data.get("segments", {}) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise SegmentError(f"{source}: expected a mapping 'segments: {{name: {{description, filter}}}}'")
    for name, spec in entries.items():
        if not isinstance(name, str) or not SEGMENT_NAME_RE.match(name):
            raise SegmentError(f"{source}: segment name {name!r} must use letters, digits, _ . -")
        if name == ALL.name:
            raise SegmentError(f"{source}: 'all' is built in and cannot be redefined")
        if not isinstance(spec, dict) or set(spec) - {"description", "filter"}:
            raise SegmentError(f"segment {name!r}: expected 'description' and 'filter' keys only")
        segment = Segment(name, str(spec.get("description") or ""), spec.get("filter") or {})
        try:
            compile_filter(segment.filter, segment=name)
        except SegmentError as exc:
            raise SegmentError(f"{source}: {exc}") from None
        segments[name] = segment
    return segments


def get_segment(name: str, path: Path | None = None) -> Segment:
    segments = load_segments(path)
    try:
        return segments[name]
    except KeyError:
        raise SegmentError(f"unknown segment {name!r} (known: {', '.join(sorted(segments))})") from None


# Querying --------------------------------------------------------------------------------


def _condition(segment: Segment | str, extra: dict | None) -> ColumnElement[bool]:
    seg = get_segment(segment) if isinstance(segment, str) else segment
    condition = compile_filter(seg.filter, segment=seg.name)
    if extra:
        condition = and_(condition, compile_filter(extra, segment=f"{seg.name} (extra filter)"))
    return condition


def iter_audience_chunks(
    session: Any, segment: Segment | str, chunk_size: int = 1000, extra: dict | None = None
) -> Iterator[list[int]]:
    """Customer ids in the segment, ascending, ``chunk_size`` at a time (keyset pagination)."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    condition = _condition(segment, extra)
    id_column = _CUSTOMER.c.id
    last: int | None = None
    while True:
        query = select(id_column).where(condition).order_by(id_column).limit(chunk_size)
        if last is not None:
            query = query.where(id_column > last)
        ids = list(session.execute(query).scalars())
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


def audience_between(session: Any, segment: Segment | str, first: int, last: int,
                     extra: dict | None = None) -> list[int]:
    """Customer ids in the segment from ``first`` to ``last`` (inclusive), ascending: one chunk of
    ``iter_audience_chunks`` found again from its bounds."""
    id_column = _CUSTOMER.c.id
    query = select(id_column).where(_condition(segment, extra), id_column >= first, id_column <= last)
    return list(session.execute(query.order_by(id_column)).scalars())


@dataclass(frozen=True)
class SegmentAudience:
    """The customers of a segment (narrowed by ``extra``), read in short transactions: what a
    chunk task finds its customers in from an id range."""

    segment: str
    extra: dict | None = None

    def chunks(self, chunk_size: int) -> Iterator[list[int]]:
        from orchestrator.db import ShortTransactionReader

        return iter_audience_chunks(ShortTransactionReader(), self.segment, chunk_size=chunk_size,
                                    extra=self.extra)

    def between(self, first: int, last: int) -> list[int]:
        from orchestrator.db import ShortTransactionReader

        return audience_between(ShortTransactionReader(), self.segment, first, last, extra=self.extra)


def count_audience(session: Any, segment: Segment | str, extra: dict | None = None) -> int:
    query = select(func.count()).select_from(_CUSTOMER).where(_condition(segment, extra))
    return int(session.execute(query).scalar_one())


# Compiling -------------------------------------------------------------------------------


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
            text_value = _AttributeValue(target.attribute, "text")
            in_text = _not_null_and(text_value, text_value.icontains(arg, autoescape=True))
            return or_(in_text, _AttributeArrayContains(target.attribute, arg))
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
            expr = _AttributeValue(target.attribute, kind)
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
                expr: Any = _AttributeValue(target.attribute, "number")
            else:  # dates stored as ISO text compare correctly as text
                bounds = {k: self.date_value(v, f"{path}.{k}").isoformat() for k, v in bounds.items()}
                expr = _AttributeValue(target.attribute, "text")
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
        return self.column() if self.attribute is None else _AttributeValue(self.attribute, "kind")


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


# Attribute access, per dialect -----------------------------------------------------------


class _AttributeColumn(ColumnClause):
    """Renders per dialect (below); reads customer.attributes, so a query selects FROM customer."""

    inherit_cache = False

    @property
    def _from_objects(self) -> list[Any]:
        return [_CUSTOMER]


class _AttributeValue(_AttributeColumn):
    """``customer.attributes[key]`` if its JSON type matches ``kind``, else NULL.

    kind: text, number, bool, or ``kind`` (the JSON type's name, NULL for missing or null).
    The key travels as a bound parameter.
    """

    inherit_cache = False

    def __init__(self, key: str, kind: str) -> None:
        types = {"text": String(), "number": Float(), "bool": Boolean(), "kind": String()}
        super().__init__(f"attributes.{key}", type_=types[kind])
        self.key_name = key
        self.kind = kind


class _AttributeArrayContains(_AttributeColumn):
    """True when ``customer.attributes[key]`` is a JSON array holding the text ``value``."""

    inherit_cache = False

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"attributes.{key}", type_=Boolean())
        self.key_name = key
        self.value = value


@compiles(_AttributeValue, "sqlite")
def _attribute_value_sqlite(element: _AttributeValue, compiler: Any, **kw: Any) -> str:
    column = _CUSTOMER.c.attributes
    path = literal(f'$."{element.key_name}"', String())
    json_type = func.json_type(column, path)
    value = func.json_extract(column, path)
    expr = {
        "text": case((json_type == "text", value)),
        "number": case((json_type.in_(["integer", "real"]), value)),
        "bool": case((json_type == "true", true()), (json_type == "false", false())),
        "kind": case(
            (json_type == "text", "string"),
            (json_type.in_(["integer", "real"]), "number"),
            (json_type.in_(["true", "false"]), "boolean"),
            (json_type.in_(["array", "object"]), json_type),
        ),
    }[element.kind]
    return compiler.process(expr, **kw)


@compiles(_AttributeValue, "postgresql")
def _attribute_value_postgresql(element: _AttributeValue, compiler: Any, **kw: Any) -> str:
    column = _CUSTOMER.c.attributes
    key = literal(element.key_name, String())
    json_type = func.json_typeof(column.op("->")(key))
    text = column.op("->>")(key)
    expr = {
        "text": case((json_type == "string", text)),
        "number": case((json_type == "number", cast(text, Float()))),
        "bool": case((json_type == "boolean", cast(text, Boolean()))),
        "kind": case((json_type != "null", json_type)),
    }[element.kind]
    return compiler.process(expr, **kw)


@compiles(_AttributeArrayContains, "sqlite")
def _array_contains_sqlite(element: _AttributeArrayContains, compiler: Any, **kw: Any) -> str:
    path = literal(f'$."{element.key_name}"', String())
    items = func.json_each(_CUSTOMER.c.attributes, path).table_valued("value", "type")
    json_type = func.json_type(_CUSTOMER.c.attributes, path)
    found = select(literal(1)).select_from(items).where(items.c.value == element.value).exists()
    return compiler.process(and_(json_type == "array", found), **kw)


@compiles(_AttributeArrayContains, "postgresql")
def _array_contains_postgresql(element: _AttributeArrayContains, compiler: Any, **kw: Any) -> str:
    node = _CUSTOMER.c.attributes.op("->")(literal(element.key_name, String()))
    wanted = func.jsonb_build_array(literal(element.value, String()))
    expr = case((func.json_typeof(node) == "array", cast(node, JSONB).op("@>")(wanted)), else_=false())
    return compiler.process(expr, **kw)
