"""Shared console helpers for the CLI: one Rich console, JSON output, clean errors.

Customer text (names, attributes, SMS replies, file contents) reaches the terminal as text:
control characters and escape sequences are shown (``␛``), never obeyed, whatever prints them,
and tables of stored data (``DataTable``) and ``plain()`` values are never read as Rich markup.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer
from rich import box
from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls (CSI, OSC...), bidirectional overrides
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def neutralise(text: str) -> str:
    """Control characters as visible symbols (ESC as ␛), one character for one."""
    return _CONTROL.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ␀ .. ␟
    return "␡" if code == 0x7F else "\ufffd"


class SafeConsole(Console):
    """A console that shows control characters instead of sending them to the terminal."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(neutralise(text), **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control is None and _CONTROL.search(segment.text):
                segment = Segment(neutralise(segment.text), segment.style)
            yield segment


def plain(value: Any) -> Text:
    """A stored value as text: no markup, no control sequences."""
    return Text(neutralise("" if value is None else str(value)))


class DataTable(Table):
    """A table of stored data (names, attributes, replies): its text cells are never markup."""

    def add_row(self, *renderables: RenderableType | None, **kwargs: Any) -> None:
        super().add_row(*(plain(c) if isinstance(c, str) else c for c in renderables), **kwargs)


console = SafeConsole()
err_console = SafeConsole(stderr=True)


def print_progress_table(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...],
                         details: str) -> None:
    """Campaigns or incidents, one per row: ``columns`` of their own, then their messages by progress
    (``orchestrator.ledger.summaries.progress``, groups with none left out), and where to look closer."""
    from orchestrator.ledger.summaries import PROGRESS

    if not rows:
        console.print("None yet.")
        return
    table = DataTable(title=title, box=box.SIMPLE_HEAD)
    table.add_column(columns[0], overflow="fold")  # the name to type next: folded, never cut
    for column in (*columns[1:], "created (UTC)", "messages"):
        table.add_column(column)
    for row in rows:
        counts = [f"{row[key]} {key.replace('_', ' ')}" for key in PROGRESS if row[key] or key == "sent"]
        created = row["created_at"][:16].replace("T", " ")
        table.add_row(*(str(row[c] or "") for c in columns), created, ", ".join(counts))
    console.print(table)
    notes = ["sent: the provider took them; waiting: planned, deferred or being sent.", f"Details: {details}"]
    if any(row["to_reconcile"] for row in rows):
        notes.append("To reconcile after a crash: orchestrator reconcile list")
    console.print(" ".join(notes), markup=False, highlight=False)


# What JSON itself leaves raw in a string but a terminal may obey: DEL, C1 controls, bidi overrides.
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_text(data: Any) -> str:
    """Indented JSON that a terminal can show safely: every control character escaped (``\\u009b``),
    the same data for any JSON reader."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def print_json(data: Any) -> None:
    typer.echo(json_text(data))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("Error:", "red"), " ", plain(message)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def database_errors(url: str | None = None) -> Iterator[None]:
    """A database that cannot be reached or is not set up, as one clear line, not a traceback.

    Only the driver's first line is shown (redacted): statements and their parameters may
    carry customer data.
    """
    try:
        yield
    except Exception as exc:
        if "sqlalchemy" not in sys.modules:  # nothing touched a database (commands start without it)
            raise
        from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

        from orchestrator.privacy import redact_text, redact_url

        if not isinstance(exc, DBAPIError):
            raise
        if url is None:
            from orchestrator.settings import get_settings

            url = get_settings().database_url
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        if "connection to server" in reason and "failed: " in reason:
            reason = reason.rsplit("failed: ", 1)[1]  # psycopg: the server's own words
        hint = ""
        if isinstance(exc, OperationalError | ProgrammingError):
            hint = " (check ORCH_DATABASE_URL; 'orchestrator init' creates the schema)"
        fail(f"database {redact_url(url)}: {redact_text(reason)}{hint}")
