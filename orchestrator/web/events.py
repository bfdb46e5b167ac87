"""``POST /events``: the shop, billing or app reports conversions (purchases, upgrades).

Bearer token from settings (ORCH_EVENTS_TOKEN), compared in constant time; 503 while none is
configured. The body is one event, a list of events, or ``{"events": [...]}``; each event has
``customer`` (external id), ``event``, ``time`` (ISO 8601 with a zone) and an optional ``value``.
A request with any bad event records nothing and answers 422 naming each bad one by index.
"""

from __future__ import annotations

import hmac
import json

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from orchestrator.conversions import BadConversion, parse_conversion, record_conversions
from orchestrator.db import session_scope
from orchestrator.settings import get_settings

router = APIRouter()
MAX_EVENTS = 10_000
SOURCE = "api"


def _authorised(request: Request) -> None:
    token = get_settings().events_token
    if token is None:
        raise HTTPException(503, "the events endpoint is not configured (ORCH_EVENTS_TOKEN)")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                              token.get_secret_value().encode()):
        raise HTTPException(401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})


@router.post("/events")
async def post_events(request: Request):
    _authorised(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise HTTPException(400, "the body must be JSON") from None
    raw = body.get("events") if isinstance(body, dict) and "events" in body else body
    events = raw if isinstance(raw, list) else [raw]
    if not events or len(events) > MAX_EVENTS:
        raise HTTPException(400, f"send 1 to {MAX_EVENTS} events per request")
    parsed, errors = [], []
    for index, item in enumerate(events):
        try:
            parsed.append((index, parse_conversion(item)))
        except BadConversion as exc:
            errors.append({"index": index, "field": exc.field, "reason": exc.reason})
    if errors:
        return JSONResponse({"detail": errors, "recorded": 0}, status_code=422)

    def apply():
        with session_scope() as session:
            report = record_conversions(session, parsed, SOURCE)
            if report.rejected:  # all or nothing: the caller fixes the request and sends it again
                session.rollback()
            return report

    report = await run_in_threadpool(apply)
    if report.rejected:
        detail = [{"index": r.position, "field": r.field, "reason": r.reason} for r in report.rejected]
        return JSONResponse({"detail": detail, "recorded": 0}, status_code=422)
    return {"recorded": report.recorded, "duplicates": report.duplicates}
