"""``orchestrator feedback list``: what customers told us lately, in their own words."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.output import DataTable, console, database_errors, fail, print_json

feedback_app = typer.Typer(help="What customers told us: replies, survey answers, opt-outs in their words.",
                           no_args_is_help=True)


@feedback_app.command("list")
def list_command(
    since: Annotated[str, typer.Option(help="How far back: 12h, 7d, 2w.")] = "7d",
    channel: Annotated[str | None, typer.Option(help="Only this channel's (sms, email...).")] = None,
    limit: int = typer.Option(50, "--limit", min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Replies, survey answers and comments, opt-outs in the customer's words, newest first; each
    reply also opened a call for an agent (orchestrator tasks list)."""
    from orchestrator.db import read_scope
    from orchestrator.inbound.heard import recent_feedback
    from orchestrator.models import utcnow
    from orchestrator.policy.config import known_channel
    from orchestrator.reports import parse_period

    try:
        start = utcnow() - parse_period(since)
        channel = known_channel(channel) if channel is not None else None
    except ValueError as exc:
        fail(str(exc), 2)
    with database_errors(), read_scope() as session:
        rows = recent_feedback(session, start, channel=channel, limit=limit)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(f"Nothing heard from customers in the last {since.strip()}.", markup=False)
        return
    table = DataTable(title=f"What customers told us, last {since.strip()}, newest first", show_lines=True)
    for column in ("received (UTC)", "customer", "what", "score", "words", "answers"):
        table.add_column(column, overflow="fold", ratio=3 if column == "words" else 1)
    for r in rows:
        score = f"{r['score']} ({r['scale']})" if r["score"] is not None else ""
        table.add_row(r["received_at"][:16].replace("T", " "), r["customer"] or "unknown", r["kind"], score,
                      r["words"], r["answers"] or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(feedback_app, name="feedback")
