"""Customer import throughput: ``python -m bench.import_customers [--rows 100000]``.

Imports a synthetic file into a fresh SQLite database and (when reachable) a fresh
PostgreSQL database, then imports it again (nothing changes: the idempotent path).
Reports wall and CPU seconds (on a shared machine CPU time is the steadier number), rows
per second, and two ratios measured in this run: validation's share
of the first import, and the re-import's time relative to the first import.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from orchestrator.customer_import import ImportReport as _Report
from orchestrator.customer_import import import_customers
from orchestrator.customer_import.read import read_csv
from orchestrator.customer_import.validate import RowValidator
from orchestrator.db import get_engine, session_scope, upgrade
from samples.generate import write_bulk_csv
from tests.support import postgres


def _validation_seconds(path: Path) -> float:
    start = time.process_time()
    validator = RowValidator()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for item in read_csv(handle, _Report()):
            if not isinstance(item, tuple):
                continue
            validator.validate(*item)
    return time.process_time() - start


def _measure(label: str, url: str, path: Path, rows: int, validation: float) -> None:
    upgrade(url)

    def factory():
        return session_scope(url)

    start, cpu = time.perf_counter(), time.process_time()
    first = import_customers(path, session_factory=factory)
    first_s, first_cpu = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    second = import_customers(path, session_factory=factory)
    second_s = time.perf_counter() - start
    assert first.imported == rows and second.unchanged == rows, (first.to_dict(), second.to_dict())
    print(
        f"{label:<10} first import {first_s:6.2f} s wall, {first_cpu:6.2f} s CPU in this process "
        f"({rows / first_s:>8,.0f} rows/s), "
        f"re-import {second_s:6.2f} s; validation share of CPU {validation / first_cpu:.0%}, "
        f"re-import/first {second_s / first_s:.2f}"
    )
    get_engine(url).dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bulk_csv(Path(tmp) / "customers.csv", args.rows)
        validation = _validation_seconds(path)
        print(f"{args.rows:,} rows; validation alone {validation:.2f} s CPU")
        _measure("sqlite", f"sqlite:///{tmp}/bench.db", path, args.rows, validation)
        server, reason = postgres.ensure_server()
        if server is None:
            print(f"postgres   skipped: {reason}")
            return
        url = postgres.create_database(server)
        try:
            _measure("postgres", url, path, args.rows, validation)
        finally:
            postgres.drop_database(server, url)


if __name__ == "__main__":
    main()
