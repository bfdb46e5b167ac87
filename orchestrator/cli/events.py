"""``orchestrator events import FILE``: conversions (purchases, upgrades) a campaign may aim at.

Exit codes: 0 imported (rejected lines, if any, are listed); 1 nothing could be imported;
2 the file itself is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.output import console, fail, print_json

events_app = typer.Typer(help="Conversion events (what customers did) for campaign goals.",
                         no_args_is_help=True)
SHOWN_REJECTIONS = 50


@events_app.command("import")
def import_events(
    file: Annotated[Path, typer.Argument(help="CSV (customer,event,time,value) or JSON Lines (.jsonl).")],
    as_json: bool = typer.Option(False, "--json", help="Machine-readable report."),
) -> None:
    """Import conversion events; the same file twice records nothing new."""
    from orchestrator.conversions import ConversionReport, read_events_file, record_conversions
    from orchestrator.db import session_scope

    try:
        good, bad = read_events_file(file)
    except ValueError as exc:
        fail(str(exc), 2)
    report = ConversionReport()
    if good:
        with session_scope() as session:
            report = record_conversions(session, good, f"import:{file.name}"[:64])
    report.rejected = sorted(bad + report.rejected, key=lambda r: r.position)
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(f"{report.recorded} event(s) recorded, {report.duplicates} already known, "
                      f"{len(report.rejected)} rejected.")
        if report.rejected:
            table = Table(title="Rejected lines")
            for column in ("line", "field", "reason"):
                table.add_column(column)
            for r in report.rejected[:SHOWN_REJECTIONS]:
                table.add_row(str(r.position), r.field, r.reason)
            console.print(table)
    if report.rejected and not report.recorded and not report.duplicates:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(events_app, name="events")
