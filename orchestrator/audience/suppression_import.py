"""Importing a suppression list (moving from another email or SMS provider, a legal list): a CSV file
of addresses that no message may go to.

The file has a header; the address is in the column ``address`` (or ``email``, or ``phone``), the
channel in ``channel`` or given for the whole file, and a ``reason`` column, if any, is kept as the
history's note (providers' exports say why in free text: "550 5.1.1 mailbox unknown"). Every address
is checked and normalised by its channel's rules; a line that fails is reported with its number and
why (never the address), and the rest is imported. An address already on the list keeps its entry.
Lines are written a thousand at a time, so a large file is not one long transaction.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.audience.suppressions import IMPORTED, WORDS
from orchestrator.consent import suppress_address
from orchestrator.contact_points import normalise_address
from orchestrator.csv_lines import MalformedLine, data_lines, undecodable
from orchestrator.db import session_scope
from orchestrator.policy.config import known_channel

ADDRESS_COLUMNS = ("address", "email", "phone")
REASONS = tuple(WORDS)  # the list's own vocabulary: a reason decides who may lift the address
SOURCE = "import"
BATCH = 1000


class SuppressionImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, no address column, no channel)."""


@dataclass
class Rejected:
    line: int
    reason: str


@dataclass
class SuppressionImport:
    read: int = 0
    added: int = 0
    already: int = 0  # on the list before
    rejected: list[Rejected] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_suppressions(path: Path, *, channel: str | None = None, reason: str = IMPORTED,
                        region: str = "US") -> SuppressionImport:
    """Imports the file's addresses (``channel`` for lines without one) with ``reason``; ``region``
    reads phone numbers written without a country code."""
    if reason not in REASONS:
        raise SuppressionImportError(f"unknown reason {reason!r}: use one of {', '.join(REASONS)}")
    if channel is not None:
        channel = _channel(channel)
    outcome = SuppressionImport()
    batch: list[tuple[str, str, str | None]] = []
    for line, row in _rows(path, channel_given=channel is not None):
        outcome.read += 1
        try:
            if isinstance(row, str):
                raise ValueError(row)
            if not row["address"]:
                raise ValueError("no address")
            row_channel = _channel(row["channel"]) if row.get("channel") else channel
            if row_channel is None:
                raise ValueError("no channel on this line")
            address = normalise_address(row_channel, row["address"], region)
        except ValueError as exc:
            outcome.rejected.append(Rejected(line, str(exc)))
            continue
        batch.append((row_channel, address, (row.get("reason") or "").strip()[:500] or None))
        if len(batch) >= BATCH:
            _write(batch, reason, outcome)
    _write(batch, reason, outcome)
    return outcome


def _channel(name: str) -> str:
    return known_channel(name.strip().lower())


def _write(batch: list[tuple[str, str, str | None]], reason: str, outcome: SuppressionImport) -> None:
    if not batch:
        return
    with session_scope() as session:
        added = sum(suppress_address(session, channel, address, reason, SOURCE, note=note)
                    for channel, address, note in batch)
    outcome.added += added
    outcome.already += len(batch) - added
    batch.clear()


def _rows(path: Path, *, channel_given: bool) -> Iterator[tuple[int, dict[str, str] | str]]:
    """(line number, row by lower-case column, or why the line cannot be read) for each data line."""
    try:
        handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise SuppressionImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise SuppressionImportError("the file is empty: expected a header line with an address column"
                                         ) from None
        except csv.Error as exc:
            raise SuppressionImportError(f"the header line is not valid CSV: {exc}") from None
        column = next((c for c in ADDRESS_COLUMNS if c in header), None)
        if column is None:
            raise SuppressionImportError(f"no address column: name one of {', '.join(ADDRESS_COLUMNS)}")
        if "channel" not in header and not channel_given:
            raise SuppressionImportError("no channel column: give the file's channel (--channel email)")
        for line, fields in data_lines(reader):
            if isinstance(fields, MalformedLine):
                yield line, fields
            elif any(undecodable(f) for f in fields):
                yield line, "not valid UTF-8"
            elif any(f.strip() for f in fields):  # not a blank line
                row = dict(zip(header, fields, strict=False))
                row["address"] = row.get(column, "").strip()
                yield line, row
