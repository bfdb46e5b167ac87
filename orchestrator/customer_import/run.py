"""The import: rows read and validated here, chunks written on a background thread."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from orchestrator.customer_import.read import detect_format, read_csv, read_jsonl
from orchestrator.customer_import.report import CustomerImportError, ImportReport, RejectedRow
from orchestrator.customer_import.validate import RowError, RowValidator, ValidRow
from orchestrator.customer_import.write import SessionFactory, write_chunk
from orchestrator.db import session_scope

CHUNK_SIZE = 2000


def import_customers(
    path: Path,
    *,
    fmt: str | None = None,
    session_factory: SessionFactory = session_scope,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Imports customers from ``path``; ``progress`` is called with the rows handled per chunk."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    report = ImportReport()
    validator = RowValidator()
    first_line_of: dict[str, int] = {}
    chunk: list[ValidRow] = []
    handled = 0
    try:
        # surrogateescape: invalid bytes survive decoding, so the row holding them can be
        # rejected with its line number while the rest of the file is imported.
        handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise CustomerImportError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle, _ChunkWriter(session_factory, report, progress) as writer:
        rows = read_csv(handle, report) if fmt == "csv" else read_jsonl(handle, report)
        for item in rows:
            handled += 1
            if isinstance(item, RejectedRow):
                report.rejected.append(item)
                continue
            line, raw = item
            try:
                row = validator.validate(line, raw)
            except RowError as exc:
                report.rejected.append(RejectedRow(line, exc.field, exc.reason))
                continue
            first = first_line_of.setdefault(row.external_id, line)
            if first != line:
                reason = f"duplicate external_id: already imported from line {first}"
                report.rejected.append(RejectedRow(line, "external_id", reason))
                continue
            chunk.append(row)
            if len(chunk) >= CHUNK_SIZE:
                writer.submit(chunk, handled)
                chunk, handled = [], 0
        writer.submit(chunk, handled)
    return report


class _ChunkWriter:
    """Writes each chunk on a background thread while the next one is being validated.

    Database work (SQLite's C code, PostgreSQL's server) overlaps Python validation. One
    chunk at most is in flight; its counts, or its error, are collected before the next is
    sent, so an error stops the import at the chunk that failed.
    """

    def __init__(
        self, session_factory: SessionFactory, report: ImportReport, progress: Callable[[int], None] | None
    ) -> None:
        self.session_factory = session_factory
        self.report = report
        self.progress = progress
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="customer-import")
        self.pending: tuple[Future[tuple[int, int, int]], int] | None = None

    def submit(self, rows: list[ValidRow], handled: int) -> None:
        self.collect()
        if rows:
            self.pending = (self.pool.submit(write_chunk, self.session_factory, rows), handled)
        elif handled and self.progress is not None:
            self.progress(handled)

    def collect(self) -> None:
        if self.pending is None:
            return
        future, handled = self.pending
        self.pending = None
        imported, updated, unchanged = future.result()
        self.report.imported += imported
        self.report.updated += updated
        self.report.unchanged += unchanged
        if self.progress is not None:
            self.progress(handled)

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        try:
            if exc_type is None:
                self.collect()
        finally:
            self.pool.shutdown(wait=True)
