"""The SQL statements a piece of code runs: how tests prove a step costs a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from orchestrator.db import get_engine


@contextmanager
def recorded_statements(url: str | None = None) -> Iterator[list[str]]:
    """Every statement sent to the database (the settings' one, or ``url``) while the block runs."""
    engine = get_engine(url)
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def reading(table: str, statements: list[str]) -> list[str]:
    """The statements that read ``table``."""
    return [s for s in statements if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]
