"""``POST /incidents``: monitoring and status-page tools start the outage notice.

Bearer token from settings (ORCH_INCIDENT_TOKEN), compared in constant time; 503 while
none is configured. The launcher is given to ``create_app``; it returns a run id.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.outage_notice import Severity, Status
from orchestrator.settings import get_settings

log = logging.getLogger(__name__)
router = APIRouter()


class IncidentRequest(BaseModel):
    """The outage notice's parameters, as ``flows.outage.outage_notice`` takes them."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str = Field(min_length=1, max_length=128)
    status: Status
    severity: Severity
    summary: str = Field(min_length=1, max_length=5000)
    segment: str | None = Field(default=None, max_length=128)
    affected: dict[str, Any] | None = None
    status_page_url: str | None = Field(default=None, max_length=500, pattern=r"^https?://")
    title: str | None = Field(default=None, max_length=200)
    social_post: bool = True  # false: no public post on the social channel for this update

    def flow_parameters(self) -> dict[str, Any]:
        """The flow's parameters: those given, defaults left to the flow (and out of the
        trigger's idempotency key, so a request that spells out a default is the same trigger)."""
        return self.model_dump(exclude_defaults=True)


IncidentLauncher = Callable[[IncidentRequest], str]


def _authorised(request: Request) -> None:
    token = get_settings().incident_token
    if token is None:
        raise HTTPException(503, "the incident trigger is not configured (ORCH_INCIDENT_TOKEN)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


@router.post("/incidents", status_code=202)
async def trigger_incident(request: Request):
    _authorised(request)
    try:
        incident = IncidentRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)
    launch: IncidentLauncher | None = request.app.state.launch_incident
    if launch is None:
        raise HTTPException(503, "no outage notice launcher is configured")
    try:
        run_id = await run_in_threadpool(launch, incident)
    except Exception:
        log.exception("could not start the outage notice for incident %s", incident.incident_id)
        raise HTTPException(502, "could not start the outage notice") from None
    log.info("outage notice started for incident %s: run %s", incident.incident_id, run_id)
    return {"run_id": run_id, "incident_id": incident.incident_id}
