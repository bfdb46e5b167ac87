"""``create_app()``: the web app that closes the feedback loop."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from orchestrator.db import read_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.web import (
    events,
    incidents,
    preference_centre,
    ratings,
    sendgrid_events,
    sendgrid_inbound,
    twilio_callbacks,
    unsubscribe,
)
from orchestrator.web.access_log import AccessLog
from orchestrator.web.common import PAGE_HEADERS, templates
from orchestrator.web.incidents import IncidentLauncher
from orchestrator.web.limits import BodySizeLimit


def create_app(launch_incident: IncidentLauncher | None = None) -> FastAPI:
    """The app. ``launch_incident`` starts an outage notice and returns its run id (without
    one, ``POST /incidents`` answers 503). Settings are read per request (ORCH_*)."""
    app = FastAPI(title="Orchestrator feedback loop", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.launch_incident = launch_incident
    app.add_middleware(BodySizeLimit)
    modules = (sendgrid_events, sendgrid_inbound, twilio_callbacks, unsubscribe, preference_centre, incidents,
               events, ratings)
    # Outermost, so it logs refusals too; it matches those against the routes to name them.
    app.add_middleware(AccessLog, routes=[route for module in modules for route in module.router.routes])
    for module in modules:
        app.include_router(module.router)

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException):
        # Customers following a link get a page; machines get JSON.
        if request.url.path.startswith(("/unsubscribe/", "/preferences/", "/rate/")):
            return templates.TemplateResponse(
                request, "problem.html", {"message": exc.detail}, status_code=exc.status_code,
                headers={**PAGE_HEADERS, **(exc.headers or {})},
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect):
        # The client left (or was cut off for sending too slowly) mid-body: nobody to answer.
        return Response(status_code=408)

    @app.get("/healthz", include_in_schema=False)
    def _health() -> JSONResponse:
        # For a load balancer's or a supervisor's probe: healthy while the ledger can be read.
        try:
            with read_scope() as session:
                session.execute(select(MESSAGE.c.id).limit(1))
        except SQLAlchemyError:
            return JSONResponse({"ok": False, "database": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True, "database": "ok"})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def _root() -> str:
        return "<!doctype html><title>Orchestrator</title><p>Nothing to see here.</p>"

    return app
