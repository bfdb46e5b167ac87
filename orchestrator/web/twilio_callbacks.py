"""Twilio webhooks: message status callbacks and inbound SMS (keywords, replies).

Both are validated with Twilio's signature over the public URL and the form parameters.
Status callbacks are idempotent on MessageSid + status, inbound messages on their MessageSid.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from orchestrator.db import session_scope
from orchestrator.feedback import apply_provider_events, handle_inbound_sms, twilio_status_event
from orchestrator.settings import get_settings
from orchestrator.web.common import form_pairs, public_url

log = logging.getLogger(__name__)
router = APIRouter()

SIGNATURE_HEADER = "X-Twilio-Signature"


async def verified_params(request: Request) -> dict[str, str]:
    """The form parameters of a request Twilio signed; 4xx otherwise."""
    token = get_settings().twilio_auth_token
    if token is None:
        raise HTTPException(503, "Twilio auth token is not configured")
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise HTTPException(403, "unsigned request")
    pairs = form_pairs(await request.form())
    verify = request.app.state.verifiers.twilio
    if not verify(token.get_secret_value(), public_url(request), pairs, signature):
        log.warning("refused a Twilio request with an invalid signature on %s", request.url.path)
        raise HTTPException(403, "invalid signature")
    return dict(pairs)


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request) -> dict:
    params = await verified_params(request)
    try:
        event = twilio_status_event(params, request.query_params.get("message_id"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None

    def apply():
        with session_scope() as session:
            return apply_provider_events(session, [event])

    return asdict(await run_in_threadpool(apply))


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    params = await verified_params(request)
    sender, sid = params.get("From", "").strip(), params.get("MessageSid") or params.get("SmsSid") or ""
    if not sender or not sid or "Body" not in params:
        raise HTTPException(400, "From, Body and MessageSid are required")
    brand = get_settings().sendgrid_from_name

    def apply():
        with session_scope() as session:
            return handle_inbound_sms(session, sender, params["Body"], sid, brand,
                                      opt_out_type=params.get("OptOutType"))

    outcome = await run_in_threadpool(apply)
    return Response(request.app.state.verifiers.twiml(outcome.reply), media_type="application/xml")
