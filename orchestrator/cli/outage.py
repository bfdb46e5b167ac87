"""``orchestrator outage notify``: tell affected customers about an incident update (a Prefect flow)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli.flow_runs import parse_pairs, print_flow_summary, run_flow
from orchestrator.cli.output import print_json
from orchestrator.outage_notice import Severity, Status

outage_app = typer.Typer(help="Outage and incident notices: fast, once per update, closed when resolved.",
                         no_args_is_help=True)


@outage_app.command("notify")
def notify(
    incident_id: str = typer.Argument(..., help="The incident's id (status page or monitoring tool)."),
    status: Annotated[Status, typer.Option("--status", help="Where the incident stands.")] = ...,  # type: ignore[assignment]
    severity: Annotated[Severity, typer.Option(
        "--severity", help="major and critical also open calls for premium accounts.")] = "major",
    summary: str = typer.Option(..., "--summary", help="What is broken (or, when resolved, what happened)."),
    title: str = typer.Option(None, "--title", help="A short title; then --summary says what we are doing."),
    segment: str = typer.Option(None, "--segment", help="Affected segment (default: all customers)."),
    affected: Annotated[list[str] | None, typer.Option(
        "--affected", help="Affected attribute KEY=VALUE, e.g. region=eu-west (repeatable).")] = None,
    status_page_url: str = typer.Option(None, "--status-page-url", help="Link to the status page."),
    no_post: bool = typer.Option(False, "--no-post", help="No public social post for this update."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Notify affected customers of an incident update; re-running the same update notifies nobody twice."""
    from flows.outage import outage_notice

    result = run_flow(
        outage_notice, incident_id=incident_id, status=status, severity=severity, summary=summary,
        title=title, segment=segment, affected=parse_pairs(affected, "--affected") or None,
        status_page_url=status_page_url, social_post=not no_post,
    )
    print_json(result) if as_json else print_flow_summary(result, f"Incident {incident_id}: {status}")


def register(app: typer.Typer) -> None:
    app.add_typer(outage_app, name="outage")
