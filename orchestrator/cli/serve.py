"""``orchestrator serve``: the webhook, unsubscribe and preference-centre web app."""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.output import console, err_console

if TYPE_CHECKING:  # the CLI starts without loading the web stack
    from orchestrator.web.incidents import IncidentRequest

log = logging.getLogger(__name__)

OUTAGE_DEPLOYMENT = "outage-notice/outage-notice"


def launch_outage_notice(incident: IncidentRequest) -> str:
    """Starts the outage notice; returns the run id.

    With ORCH_PREFECT_API_URL set, a run of the ``outage-notice`` deployment (a worker picks it
    up; a retried request with the same body does not start a second run). Otherwise the flow
    runs in this process, in a background thread, and the id is a local one.
    """
    from orchestrator.settings import get_settings

    parameters = incident.model_dump(exclude_none=True)
    api_url = get_settings().prefect_api_url
    if api_url:
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        key = hashlib.sha256(incident.model_dump_json().encode()).hexdigest()
        with temporary_settings({PREFECT_API_URL: api_url}):
            run = run_deployment(OUTAGE_DEPLOYMENT, parameters=parameters, timeout=0,
                                 idempotency_key=f"incident-{key}", as_subflow=False)
        return str(run.id)

    from flows.outage import outage_notice

    run_id = f"local-{uuid.uuid4()}"

    def run() -> None:
        try:
            outage_notice(**parameters)
        except Exception:
            log.exception("outage notice %s for incident %s failed", run_id, incident.incident_id)

    threading.Thread(target=run, name=f"outage-notice-{incident.incident_id}", daemon=True).start()
    return run_id


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
        port: int = typer.Option(8000, "--port", help="Port to listen on."),
        access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                        help="One line per request (route, status, time; no tokens)."),
    ) -> None:
        """Run the web app: provider webhooks, SMS replies, unsubscribe, preference centre, incidents."""
        import uvicorn

        from orchestrator.links import one_click_warning
        from orchestrator.settings import get_settings
        from orchestrator.web import create_app
        from orchestrator.web.server import server_config

        console.print(f"Serving on http://{host}:{port} (public URL {get_settings().public_base_url})")
        warning = one_click_warning()
        if warning:
            err_console.print(f"Warning: {warning}", style="yellow", markup=False, highlight=False)
        if access_log:
            logging.getLogger("orchestrator.web.access").setLevel(logging.INFO)
        app_ = create_app(launch_incident=launch_outage_notice)
        uvicorn.Server(server_config(app_, host, port)).run()
