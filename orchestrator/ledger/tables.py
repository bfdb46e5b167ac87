"""The ``message`` table for Core statements (bulk reads and writes skip the ORM's cost), and its
values as the database driver takes them when a bulk statement bypasses SQLAlchemy's type handling."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Table

from orchestrator.models import Message, table_of

MESSAGE: Table = table_of(Message)


def stored_time(value: datetime, sqlite: bool) -> str | datetime:
    """A time as the driver takes it: UTC; on SQLite the text SQLAlchemy stores for a DateTime (times
    are compared as text there). A naive time is refused, as the model refuses it."""
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: ledger times must be timezone-aware")
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M:%S.%f}" if sqlite else utc
