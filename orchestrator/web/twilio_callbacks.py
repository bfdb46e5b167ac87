"""Twilio webhooks: message status callbacks and inbound SMS (keywords, replies).

Both are validated with Twilio's signature over the public URL and the form parameters.
Status callbacks are idempotent on MessageSid + status, inbound messages on their MessageSid.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request, Response

from channels.settings import current
from channels.twilio import webhook as twilio
from channels.twilio.settings import TwilioSettings
from orchestrator.inbound.delivery_events import apply_provider_events
from orchestrator.inbound.sms import handle_inbound_sms
from orchestrator.web.common import form_pairs, in_transaction, public_url

log = logging.getLogger(__name__)
router = APIRouter()


async def verified_params(request: Request) -> dict[str, str]:
    """The parameters of a request Twilio signed (a form, or a JSON object whose SHA-256 the
    signed URL carries), with well-formed ids of our account; 4xx otherwise, before anything
    acts on it."""
    settings = current(TwilioSettings)
    if settings.auth_token is None:
        raise HTTPException(503, "Twilio auth token is not configured")
    signature = request.headers.get(twilio.SIGNATURE_HEADER)
    if not signature:
        raise HTTPException(403, "unsigned request")
    token, url = settings.auth_token.get_secret_value(), public_url(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        body = (await request.body()).decode("utf-8", errors="replace")
        valid = twilio.signature_valid(token, url, body, signature)
        params = json_params(body) if valid else {}
    else:
        pairs = form_pairs(await request.form())
        valid = twilio.signature_valid(token, url, pairs, signature)
        params = dict(pairs)
    if not valid:
        log.warning("refused a Twilio request with an invalid signature on %s", request.url.path)
        raise HTTPException(403, "invalid signature")
    try:
        twilio.check_sids(params, settings.account_sid)
    except ValueError as exc:
        log.warning("refused a signed Twilio request on %s: %s", request.url.path, exc)
        raise HTTPException(403, f"malformed Twilio request: {exc}") from None
    return params


def json_params(body: str) -> dict[str, str]:
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "the JSON body is not valid JSON") from None
    if not isinstance(data, dict) or not all(isinstance(v, str | int | float | bool) for v in data.values()):
        raise HTTPException(400, "the JSON body must be an object of plain values")
    return {str(k): str(v) for k, v in data.items()}


@router.post("/webhooks/twilio/status")
async def twilio_status(request: Request) -> dict:
    params = await verified_params(request)
    try:
        event = twilio.status_event(params, request.query_params.get("message_id"))
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None

    return asdict(await in_transaction(lambda session: apply_provider_events(session, [event])))


@router.post("/webhooks/twilio/inbound")
async def twilio_inbound(request: Request) -> Response:
    params = await verified_params(request)
    try:
        message = twilio.inbound_message(params)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    outcome = await in_transaction(lambda session: handle_inbound_sms(session, message))
    return Response(twilio.twiml_reply(outcome.reply), media_type="application/xml")
