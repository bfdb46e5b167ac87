"""Conversion events: what customers did that a campaign may have caused (a purchase, an upgrade).

They arrive through ``POST /events`` or ``orchestrator events import FILE`` (CSV or JSON Lines),
each with the customer (external id), the event name, when it happened and an optional value.
A campaign names its goal event; the report counts the goal events within the attribution
window after each customer's send (holdouts: the same window from the campaign's start).

Recording is idempotent on (customer, event, time), so sending or importing the same events
again records nothing new. A bad event is refused with its position and the reason; it never
stops the good ones of a file.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from orchestrator.models import ConversionEvent, Customer, utcnow

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
FIELDS = ("customer", "event", "time", "value")


@dataclass(frozen=True)
class Conversion:
    customer: str  # external id
    event: str
    occurred_at: datetime
    value: float | None = None


@dataclass
class Rejected:
    position: int  # line of a file (1 = header for CSV), or index in a request
    field: str
    reason: str


@dataclass
class ConversionReport:
    recorded: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "duplicates": self.duplicates,
                "rejected": [vars(r) for r in self.rejected]}


class BadConversion(ValueError):
    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field, self.reason = field_name, reason


def parse_conversion(raw: Mapping[str, Any]) -> Conversion:
    """One event from a mapping with ``customer``, ``event``, ``time`` and optional ``value``."""
    if not isinstance(raw, Mapping):
        raise BadConversion("event", "each event must be an object")
    unknown = set(raw) - set(FIELDS)
    if unknown:
        raise BadConversion(sorted(unknown)[0], f"unknown field (expected {', '.join(FIELDS)})")
    customer = raw.get("customer")
    if not isinstance(customer, str | int) or not str(customer).strip() or len(str(customer)) > 128:
        raise BadConversion("customer", "the customer's external id is required (at most 128 characters)")
    name = raw.get("event")
    if not isinstance(name, str) or not NAME_PATTERN.match(name.strip()):
        raise BadConversion("event", "an event name of 1-64 letters, digits, '_', '.', ':' or '-' "
                                     "is required")
    when = raw.get("time")
    if not isinstance(when, str) or not when.strip():
        raise BadConversion("time", "an ISO 8601 time with a time zone is required, "
                                    "e.g. 2026-03-25T14:02:00Z")
    try:
        occurred_at = datetime.fromisoformat(when.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadConversion("time", f"{when[:40]!r} is not an ISO 8601 time") from None
    if occurred_at.tzinfo is None:
        raise BadConversion("time", "the time needs a time zone (Z or +hh:mm): local times are ambiguous")
    value = raw.get("value")
    if value is not None and value != "":
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise BadConversion("value", f"{str(value)[:40]!r} is not a number") from None
        if not math.isfinite(value):
            raise BadConversion("value", "must be a finite number")
    else:
        value = None
    return Conversion(str(customer).strip(), name.strip(), occurred_at, value)


def record_conversions(session: Session, conversions: Iterable[tuple[int, Conversion]], source: str
                       ) -> ConversionReport:
    """Records (position, conversion) pairs; an unknown customer is rejected, a repeat is a duplicate."""
    report = ConversionReport()
    items = list(conversions)
    ids = {c.customer for _, c in items}
    known: dict[str, int] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), 1000):
        query = select(Customer.external_id, Customer.id).where(
            col(Customer.external_id).in_(ordered[start:start + 1000]))
        known.update((external_id, cid) for external_id, cid in session.exec(query) if cid is not None)
    rows: list[dict[str, Any]] = []
    seen: set[tuple[int, str, datetime]] = set()
    now = utcnow()
    for position, c in items:
        customer_id = known.get(c.customer)
        if customer_id is None:
            report.rejected.append(Rejected(position, "customer", "no customer with this external id"))
            continue
        key = (customer_id, c.event, c.occurred_at)
        if key in seen:
            report.duplicates += 1
            continue
        seen.add(key)
        rows.append({"customer_id": customer_id, "name": c.event, "occurred_at": c.occurred_at,
                     "value": c.value, "source": source, "created_at": now})
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), 1000):
        part = rows[start:start + 1000]
        stmt = insert(ConversionEvent).values(part).on_conflict_do_nothing(
            index_elements=["customer_id", "name", "occurred_at"]).returning(col(ConversionEvent.id))
        inserted = len(session.connection().execute(stmt).all())
        report.recorded += inserted
        report.duplicates += len(part) - inserted
    return report


def read_events_file(path: Path) -> tuple[list[tuple[int, Conversion]], list[Rejected]]:
    """The events of a CSV (header ``customer,event,time,value``) or JSON Lines file, by line.

    Raises ValueError when the file itself is unusable (unreadable, not UTF-8, no header).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    lines = _jsonl(text) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else _csv(text, path)
    good: list[tuple[int, Conversion]] = []
    bad: list[Rejected] = []
    for number, raw in lines:
        try:
            if isinstance(raw, BadConversion):
                raise raw
            good.append((number, parse_conversion(raw)))
        except BadConversion as exc:
            bad.append(Rejected(number, exc.field, exc.reason))
    return good, bad


def _jsonl(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, BadConversion("line", f"not JSON ({exc.msg})")


def _csv(text: str, path: Path) -> Iterator[tuple[int, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [f for f in ("customer", "event", "time") if f not in header]
    if missing:
        raise ValueError(f"{path}: the header must name {', '.join(FIELDS)} (missing: {', '.join(missing)})")
    for row in reader:
        if None in row:  # more cells than the header names
            yield reader.line_num, BadConversion("line", "more cells than the header has columns")
            continue
        yield reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k and k.strip()}
