"""``orchestrator segments list|preview``: the audiences declared in segments.yaml."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from orchestrator.cli.customers import customers_table, database_errors, listed_rows
from orchestrator.cli.output import console, fail, print_json

segments_app = typer.Typer(help="Audiences declared in segments.yaml.", no_args_is_help=True)


@segments_app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every segment with its description and how many customers it holds now."""
    from orchestrator.db import session_scope
    from orchestrator.segments import SegmentError, count_audience, load_segments

    try:
        found = load_segments()
    except SegmentError as exc:
        fail(str(exc), 2)
    with database_errors(), session_scope() as session:
        rows: list[dict[str, Any]] = [
            {"name": s.name, "description": s.description, "count": count_audience(session, s)}
            for s in found.values()
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="Segments")
    table.add_column("name")
    table.add_column("description")
    table.add_column("customers", justify="right")
    for row in rows:
        table.add_row(row["name"], row["description"], str(row["count"]))
    console.print(table)

@segments_app.command("preview")
def preview_command(
    name: str = typer.Argument(..., help="The segment's name."),
    limit: int = typer.Option(10, "--limit", min=1, help="How many customers to sample."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """How many customers a segment holds, and the first few (contact details masked)."""
    from sqlmodel import col, select

    from orchestrator.db import session_scope
    from orchestrator.models import Customer
    from orchestrator.segments import SegmentError, count_audience, get_segment, iter_audience_chunks

    try:
        segment = get_segment(name)
    except SegmentError as exc:
        fail(str(exc), 2)
    with database_errors(), session_scope() as session:
        total = count_audience(session, segment)
        ids = next(iter_audience_chunks(session, segment, chunk_size=limit), [])
        in_sample = select(Customer).where(col(Customer.id).in_(ids))
        sample = session.exec(in_sample.order_by(col(Customer.id))).all()
        rows = listed_rows(session, sample)
    if as_json:
        print_json({"segment": segment.name, "description": segment.description, "count": total,
                    "sample": rows})  # fmt: skip
        return
    console.print(f"[bold]{segment.name}[/]: {segment.description} ({total} customers)", highlight=False)
    console.print(customers_table(rows, title=f"First {len(rows)}"))


def register(app: typer.Typer) -> None:
    app.add_typer(segments_app, name="segments")
