"""``orchestrator report``: how a campaign or an incident did, and the sender's health."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import typer
from rich.text import Text

from orchestrator.cli.output import DataTable, console, fail, plain, print_json

report_app = typer.Typer(
    help="Results from the ledger and the delivery events: funnel, rates, breakdowns, health flags.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output (keys: funnel, rates, "
                                                          "breakdown, variants, flags).")]
PlotOption = Annotated[str | None, typer.Option("--plot", help="Also draw the funnel (and variants) "
                                                               "into this PNG file.")]


def _table(title: str, header: tuple[str, ...] | list[str], rows: list[Any]) -> DataTable:
    table = DataTable(*header, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))  # ledger values are never markup
    return table


def _print(report: dict[str, Any]) -> None:
    from orchestrator.reports import present

    say = console.print
    say(plain(f"Report: {report['slice']['title']}"))
    say(_table("Funnel", ("stage", "count"), present.funnel_rows(report)))
    say(_table("Rates", ("rate", "value", "of"), present.rate_rows(report)))
    say(Text(present.timing_text(report)))
    single = []
    for dimension, rows in report["breakdown"].items():
        if len(rows) > 1:
            rows_text = present.breakdown_rows(report, dimension)
            say(_table(f"By {dimension}", present.BREAKDOWN_HEADER, rows_text))
        elif rows:
            single.append(f"{dimension} {rows[0]['value']}")
    if single:
        say(plain("Every message shares " + ", ".join(single) + "."))
    header, rows = present.variant_rows(report)
    if rows:
        say(_table("Variants", header, rows))
        say(Text(present.VARIANT_LEGEND))
        say(Text(present.verdict_text(report), style="bold"))
    say(plain(report["variants"]["note"]))
    surveys = present.survey_rows(report)
    if surveys:
        say(_table("Survey answers", present.SURVEY_HEADER, surveys))
        say(Text(report["surveys"]["note"]))
    flags = present.flag_rows(report, raised_only=True)
    if flags:
        say(_table("Sender health: RAISED (last 30 days)", present.FLAG_HEADER, flags), style="red")
    else:
        say(Text("Sender health (last 30 days): no flag raised "
                 "(spam reports below 0.3% of delivered, bounces below 2% of sent, per channel)."))
    for note in report["notes"]:
        say(Text(f"- {note}", style="dim"))


def _run(part: Any, as_json: bool, plot: str | None) -> None:
    from orchestrator.db import session_scope
    from orchestrator.reports import UnknownSlice, build_report
    from orchestrator.reports.plot import PlotUnavailable, plot_report

    try:
        with session_scope() as session:
            report = build_report(session, part)
    except UnknownSlice as exc:
        fail(str(exc))
    if plot:
        try:
            plot_report(report, plot)
        except (PlotUnavailable, OSError, ValueError) as exc:
            fail(f"could not draw {plot}: {exc}")
    if as_json:
        print_json(report)
    else:
        _print(report)
        if plot:
            console.print(Text(f"Chart written to {plot}"))


@report_app.command("campaign")
def campaign(name: Annotated[str, typer.Argument(help="The campaign's name.")],
             as_json: JsonOption = False, plot: PlotOption = None) -> None:
    """Every message the campaign decided, and what became of it."""
    from orchestrator.reports import ReportSlice

    _run(ReportSlice(campaign=name), as_json, plot)


@report_app.command("incident")
def incident(incident_id: Annotated[str, typer.Argument(help="The incident's id (as for outage notify).")],
             as_json: JsonOption = False, plot: PlotOption = None) -> None:
    """Every notice of the incident, all its updates together."""
    from orchestrator.reports import ReportSlice

    _run(ReportSlice(incident=incident_id), as_json, plot)


@report_app.command("overview")
def overview(since: Annotated[str, typer.Option(help="How far back: 12h, 30d, 2w.")] = "30d",
             topic: Annotated[str | None, typer.Option(help="Only this topic.")] = None,
             as_json: JsonOption = False, plot: PlotOption = None) -> None:
    """Everything decided in the period, with the sender-health flags per channel."""
    from orchestrator.models import utcnow
    from orchestrator.reports import ReportSlice, parse_period

    try:
        period: timedelta = parse_period(since)
    except ValueError as exc:
        fail(str(exc), code=2)
    _run(ReportSlice(topic=topic, since=utcnow() - period), as_json, plot)


def register(app: typer.Typer) -> None:
    app.add_typer(report_app, name="report")
