"""``orchestrator lifecycle``: loyalty recognition, complaint acknowledgements and surveys (Prefect flows)."""

from __future__ import annotations

from datetime import date, datetime

import typer

from orchestrator.cli.flow_runs import print_flow_summary, run_flow
from orchestrator.cli.output import fail, print_json

lifecycle_app = typer.Typer(help="Lifecycle messages: anniversaries, milestones, complaints, surveys.",
                            no_args_is_help=True)


@lifecycle_app.command("daily")
def daily(
    day: str = typer.Option(None, "--day", help="The day to recognise (YYYY-MM-DD, default today UTC)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Today's customer-since anniversaries and milestone years, sent at 10:00 local time."""
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from flows.lifecycle import lifecycle_daily

    try:
        when: date | None = datetime.strptime(day, "%Y-%m-%d").date() if day else None
    except ValueError:
        fail(f"--day must look like 2026-03-14, got {day!r}", 2)
    result = run_flow(lifecycle_daily, day=when)
    print_json(result) if as_json else print_flow_summary(result, f"Loyalty recognition {result['day']}")


@lifecycle_app.command("complaint")
def complaint(
    customer: str = typer.Argument(..., help="The customer's external id."),
    complaint_id: str = typer.Option(..., "--id", help="The complaint's case reference."),
    summary: str = typer.Option(..., "--summary", help="The complaint in the customer's terms."),
    response_hours: int = typer.Option(48, "--response-hours", min=1, help="When we will answer."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Acknowledge a complaint now (premium customers also get a call)."""
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from flows.lifecycle import complaint_acknowledgement

    result = run_flow(complaint_acknowledgement, customer=customer, complaint_id=complaint_id,
                      summary=summary, response_hours=response_hours)
    print_json(result) if as_json else print_flow_summary(result, f"Complaint {complaint_id}")


@lifecycle_app.command("complaint-resolved")
def complaint_resolved(
    customer: str = typer.Argument(..., help="The customer's external id."),
    complaint_id: str = typer.Option(..., "--id", help="The complaint's case reference."),
    survey_url: str = typer.Option(..., "--survey-url", help="Where the survey is."),
    scale: str = typer.Option("csat", "--scale", help="One-click answers: csat (1-5) or nps (0-10)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Ask once for feedback after a complaint is resolved (answers in one click or by SMS)."""
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from flows.lifecycle import complaint_resolved as resolved_flow

    result = run_flow(resolved_flow, customer=customer, complaint_id=complaint_id, survey_url=survey_url,
                      survey_scale=scale)
    print_json(result) if as_json else print_flow_summary(result, f"Survey for complaint {complaint_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(lifecycle_app, name="lifecycle")
