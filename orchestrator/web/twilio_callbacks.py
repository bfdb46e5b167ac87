"""Twilio webhooks: message status callbacks and inbound SMS (keywords, replies).

Both are validated with Twilio's signature over the public URL and the form parameters.
Status callbacks are idempotent on MessageSid + status, inbound messages on their MessageSid.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool

from channels.sendgrid.settings import SendGridSettings
from channels.settings import current
from channels.twilio import webhook as twilio
from channels.twilio.settings import TwilioSettings
from orchestrator.db import session_scope
from orchestrator.inbound.delivery_events import apply_provider_events
from orchestrator.inbound.sms import handle_inbound_sms
from orchestrator.web.common import form_pairs, public_url

log = logging.getLogger(__name__)
router = APIRouter()


async def verified_params(request: Request) -> dict[str, str]:
    """The form parameters of a request Twilio signed; 4xx otherwise."""
    token = current(TwilioSettings).auth_token
    if token is None:
        raise HTTPException(503, "Twilio auth token is not configured")
    signature = request.headers.get(twilio.SIGNATURE_HEADER)
    if not signature:
        raise HTTPException(403, "unsigned request")
    pairs = form_pairs(await request.form())
    if not twilio.signature_valid(token.get_secret_value(), public_url(request), pairs, signature):
        log.warning("refused a Twilio request with an invalid signature on %s", request.url.path)
        raise HTTPException(403, "invalid signature")
    return dict(pairs)


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request) -> dict:
    params = await verified_params(request)
    try:
        event = twilio.status_event(params, request.query_params.get("message_id"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None

    def apply():
        with session_scope() as session:
            return apply_provider_events(session, [event])

    return asdict(await run_in_threadpool(apply))


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    params = await verified_params(request)
    try:
        message = twilio.inbound_message(params)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    # HELP answers in the name customers know from our email (ORCH_SENDGRID_FROM_NAME).
    brand = current(SendGridSettings).from_name

    def apply():
        with session_scope() as session:
            return handle_inbound_sms(session, message, brand)

    outcome = await run_in_threadpool(apply)
    return Response(twilio.twiml_reply(outcome.reply), media_type="application/xml")
