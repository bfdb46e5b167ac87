"""Reading a customer file: CSV or JSON Lines rows, each with its physical line number.

A row the reader cannot make sense of (malformed CSV, invalid JSON or UTF-8, the wrong number
of fields) comes out as a ``RejectedRow``; a file that cannot be read at all raises
``CustomerImportError``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from orchestrator.csv_lines import MalformedLine, data_lines, undecodable
from orchestrator.customer_import.columns import column_name, unknown_column
from orchestrator.customer_import.report import CustomerImportError, ImportReport, RejectedRow

CSV_FIELD_LIMIT = 8 * 1024 * 1024  # above this the CSV reader gives up on the row (still reported)
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise CustomerImportError(f"unknown format {fmt!r}: use csv or jsonl")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise CustomerImportError(
            f"cannot tell the format of {path.name} from its extension: pass --format csv or jsonl"
        ) from None


RowItem = tuple[int, dict[str, Any]] | RejectedRow  # (line, values by column) or why not


def read_csv(handle: TextIO, report: ImportReport) -> Iterator[RowItem]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(handle, strict=True)  # an unclosed quote is an error, not the rest of the file
    try:
        header = next(reader)
    except StopIteration:
        raise CustomerImportError("the file is empty: expected a header line with external_id") from None
    except csv.Error as exc:
        raise CustomerImportError(f"the header line is not valid CSV: {exc}") from None
    if any(undecodable(h) for h in header):
        raise CustomerImportError("the header line is not valid UTF-8")
    columns = [column_name(h) for h in header]
    seen: set[str] = set()
    repeated: set[str] = set()
    for name in columns:  # one pass: headers may be 100,000 columns wide
        if name:
            (repeated if name in seen else seen).add(name)
    if repeated:
        raise CustomerImportError(f"column(s) named more than once in the header: {_some(sorted(repeated))}")
    if "external_id" not in columns:
        raise CustomerImportError("the required column external_id is missing from the header")
    _warn_unknown(report, columns)
    width = len(columns)
    for line, fields in data_lines(reader):
        if isinstance(fields, MalformedLine):
            yield RejectedRow(line, "", fields)
            continue
        if not fields:
            continue  # a blank line
        if len(fields) != width:
            yield RejectedRow(line, "", f"the row has {len(fields)} fields, the header has {width}")
            continue
        bad = next((c for c, v in zip(columns, fields, strict=True) if undecodable(v)), None)
        if bad is not None:
            yield RejectedRow(line, bad, "not valid UTF-8 (invalid bytes in the file)")
            continue
        yield line, dict(zip(columns, fields, strict=True))


def read_jsonl(handle: TextIO, report: ImportReport) -> Iterator[RowItem]:
    unknown: set[str] = set()
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        if undecodable(text):
            yield RejectedRow(line, "", "not valid UTF-8 (invalid bytes in the file)")
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RejectedRow(line, "", f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        except RecursionError:
            yield RejectedRow(line, "", "not accepted: JSON nested too deeply")
            continue
        if not isinstance(obj, dict):
            yield RejectedRow(line, "", "each line must be a JSON object")
            continue
        row = {column_name(str(k)): v for k, v in obj.items()}
        unknown.update(k for k in row if unknown_column(k) is not None)
        yield line, row
    if unknown:
        _warn_unknown(report, sorted(unknown))


def _warn_unknown(report: ImportReport, columns: list[str]) -> None:
    ignored = [(c, why) for c in columns if (why := unknown_column(c)) is not None]
    if ignored:
        names = [f"{c!r}" + ("" if why == "unknown" else f" ({why})") for c, why in ignored]
        report.warnings.append(f"column(s) not imported: {_some(names)}")


def _some(names: list[str], shown: int = 20) -> str:
    """The first names of a list that may hold 100,000 of them."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
