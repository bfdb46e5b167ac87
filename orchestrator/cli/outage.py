"""``orchestrator outage notify``: tell affected customers about an incident update (a Prefect flow).

With ``ORCH_SERVICE_URL`` set, the notice is handed to the running ``orchestrator serve``
(``orchestrator.cli.service``: no Prefect import, the first message goes out in about the time a
``POST /incidents`` takes); if the service cannot take it, or without one, it runs in this process.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from orchestrator.cli.flow_runs import parse_pairs, print_flow_summary, run_flow
from orchestrator.cli.local_prefect import start_local_server
from orchestrator.cli.output import console, err_console, fail, print_json, print_progress_table
from orchestrator.outage_notice import Severity, Status

outage_app = typer.Typer(help="Outage and incident notices: fast, once per update, closed when resolved.",
                         no_args_is_help=True)


@outage_app.command("notify")
def notify(
    incident_id: str = typer.Argument(..., help="The incident's id (status page or monitoring tool)."),
    # after incident_id's default this one needs a default too: ``...`` is Typer's "required"
    status: Annotated[Status, typer.Option(
        "--status", help="Where the incident stands.")] = ...,  # type: ignore[assignment]  # not a Status
    severity: Annotated[Severity, typer.Option(
        "--severity", help="major and critical also open calls for premium accounts.")] = "major",
    summary: str = typer.Option(..., "--summary", help="What is broken (or, when resolved, what happened)."),
    title: str = typer.Option(None, "--title", help="A short title; then --summary says what we are doing."),
    segment: str = typer.Option(None, "--segment", help="Affected segment (default: all customers)."),
    affected: Annotated[list[str] | None, typer.Option(
        "--affected", help="Affected attribute KEY=VALUE, e.g. region=eu-west (repeatable).")] = None,
    status_page_url: str = typer.Option(None, "--status-page-url", help="Link to the status page."),
    no_post: bool = typer.Option(False, "--no-post", help="No public social post for this update."),
    in_process: bool = typer.Option(
        False, "--in-process", help="Run the notice in this process even where ORCH_SERVICE_URL is set."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Notify affected customers of an incident update; re-running the same update notifies nobody twice."""
    from orchestrator.settings import get_settings

    incident = {"incident_id": incident_id, "status": status, "severity": severity, "summary": summary,
                "title": title, "segment": segment, "affected": parse_pairs(affected, "--affected") or None,
                "status_page_url": status_page_url, "social_post": not no_post}
    settings = get_settings()
    if settings.service_url and not in_process:
        token = settings.incident_token.get_secret_value() if settings.incident_token else None
        if _handed_over(settings.service_url, token, incident, as_json):
            return
    from flows.garbage_collection import loading_for_good

    with loading_for_good():
        from orchestrator.pacing import urgency

        urgency.announce_soon()  # campaigns running meanwhile wait while this process loads the flow
        local = start_local_server()  # without a Prefect server, its local one starts during the imports
        from flows.outage import outage_notice

    with local.use():
        result = run_flow(outage_notice, **incident)
    print_json(result) if as_json else print_flow_summary(result, f"Incident {incident_id}: {status}")


def _handed_over(service_url: str, token: str | None, incident: dict[str, Any], as_json: bool) -> bool:
    """Hands the notice to the service; False (after saying why) where this process should run it."""
    from orchestrator.cli.service import HandoffFailed, hand_over_incident

    try:
        answer = hand_over_incident(service_url, token, {k: v for k, v in incident.items() if v is not None})
    except HandoffFailed as exc:
        if exc.bad_input:
            fail(str(exc), 2)
        err_console.print(f"Could not hand the notice to the orchestrator service: {exc}. Running it in this "
                          "process instead (a slower start; nobody is notified twice).",
                          style="yellow", markup=False, highlight=False, soft_wrap=True)
        return False
    run_id = answer.get("run_id")
    if as_json:
        print_json({"handed_to": service_url, **answer})
        return True
    incident_id = incident["incident_id"]
    for line in (f"Incident {incident_id}: {incident['status']}: the orchestrator service at {service_url} "
                 f"started the outage notice, flow run {run_id}.",
                 f"Follow it in the Prefect UI (flow run {run_id}) or with `prefect flow-run logs {run_id}`; "
                 f"who was notified: `orchestrator report incident {incident_id}`."):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    return True


@outage_app.command("list")
def list_command(
    limit: int = typer.Option(20, "--limit", min=1, help="How many, the latest updated first."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The latest incidents: their updates and their notices sent, waiting, suppressed, cancelled."""
    from orchestrator.ledger.incidents import list_incidents
    from orchestrator.ledger.summaries import progress

    rows = [{"incident": i.incident_key, "title": i.title, "severity": i.severity, "status": i.status,
             "updates": entry.updates, "created_at": i.created_at.isoformat(),
             "updated_at": i.updated_at.isoformat(), "messages": entry.statuses, **progress(entry.statuses)}
            for entry in list_incidents(limit) for i in (entry.incident,)]
    if as_json:
        print_json(rows)
        return
    columns = ("incident", "status", "severity")
    details = "orchestrator report incident <incident>"
    print_progress_table("Incidents, latest updated first", rows, columns, details)


def register(app: typer.Typer) -> None:
    app.add_typer(outage_app, name="outage")
