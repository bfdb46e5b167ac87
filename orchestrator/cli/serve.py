"""``orchestrator serve``: the webhook, unsubscribe and preference-centre web app."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.output import console, err_console

if TYPE_CHECKING:  # the CLI starts without loading the web stack
    from orchestrator.web.incidents import IncidentRequest

log = logging.getLogger(__name__)


def launch_outage_notice(incident: IncidentRequest) -> str:
    """Starts the outage notice at once in this process (``flows.trigger``); returns the flow run id.

    With ORCH_PREFECT_API_URL set the run is recorded on that Prefect server (UI, logs, artifacts);
    otherwise on Prefect's temporary local server. A retried request with the same body gets the
    same run id and starts nothing.
    """
    from flows.trigger import start_outage_notice
    from orchestrator.settings import get_settings

    return start_outage_notice(incident.flow_parameters(), get_settings().prefect_api_url)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log",
                                    help="One line per request (route, status, time; no tokens)."),
) -> None:
    """Run the web app: provider webhooks, SMS replies, unsubscribe, preference centre, incidents."""
    import uvicorn

    from flows.trigger import warm_up
    from orchestrator.links import one_click_warning
    from orchestrator.settings import get_settings
    from orchestrator.web import create_app
    from orchestrator.web.server import server_config

    settings = get_settings()
    if settings.incident_token is not None:  # the first outage notice must not wait for imports
        threading.Thread(target=warm_up, args=(settings.prefect_api_url,), daemon=True).start()
    console.print(f"Serving on http://{host}:{port} (public URL {settings.public_base_url})")
    warning = one_click_warning()
    if warning:
        err_console.print(f"Warning: {warning}", style="yellow", markup=False, highlight=False)
    if access_log:
        logging.getLogger("orchestrator.web.access").setLevel(logging.INFO)
    app_ = create_app(launch_incident=launch_outage_notice)
    uvicorn.Server(server_config(app_, host, port)).run()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
