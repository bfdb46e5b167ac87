"""What an import reports: counts, rejected rows with their line and field, warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


class CustomerImportError(ValueError):
    """The file as a whole cannot be imported (unreadable, unknown format, no external_id column)."""


@dataclass
class RejectedRow:
    line: int
    field: str
    reason: str


@dataclass
class ImportReport:
    imported: int = 0  # new customers
    updated: int = 0  # known customers of whom something changed
    unchanged: int = 0  # known customers the file says nothing new about
    rejected: list[RejectedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
