"""Fresh, migrated benchmark databases on SQLite or PostgreSQL, removed afterwards."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.db import get_engine, upgrade


@contextlib.contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, migrated database; dropped (PostgreSQL) or deleted (SQLite) afterwards."""
    if backend == "sqlite":
        path = tmp / f"bench-{time.monotonic_ns()}.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        try:
            yield url
        finally:
            get_engine(url).dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    from tests.support import postgres

    server, reason = postgres.ensure_server()
    if server is None:
        raise RuntimeError(f"PostgreSQL is not reachable: {reason}")
    url = postgres.create_database(server)
    try:
        upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        postgres.drop_database(server, url)


def postgres_available() -> bool:
    from tests.support import postgres

    return postgres.ensure_server()[0] is not None


def backends(choice: str) -> list[str]:
    """``--backend both|sqlite|postgres`` as a list."""
    return ["sqlite", "postgres"] if choice == "both" else [choice]


def print_report(backend: str, report: dict) -> None:
    print(f"{backend}: " + ", ".join(
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))
