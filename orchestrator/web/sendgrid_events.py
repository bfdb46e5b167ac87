"""SendGrid Event Webhook: signed batches of delivery events onto the ledger.

Refused with 4xx and no effect: a missing or wrong signature, a timestamp more than ten
minutes old (a replay) or more than five minutes ahead, a body that is not a JSON list of
events. Events are idempotent on sg_event_id, so SendGrid's retries change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from orchestrator.db import session_scope
from orchestrator.feedback import apply_provider_events, sendgrid_event
from orchestrator.settings import get_settings

log = logging.getLogger(__name__)
router = APIRouter()

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_AGE_SECONDS = 10 * 60
MAX_SKEW_SECONDS = 5 * 60


def check_timestamp(timestamp: str, now: float | None = None) -> None:
    # Seconds since the epoch: up to 12 ASCII digits. A longer number would not convert to a
    # float (a 500), and int() would also take other scripts' digits and underscores.
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise HTTPException(403, "malformed webhook timestamp")
    age = (now or time.time()) - int(timestamp)
    if age > MAX_AGE_SECONDS:
        raise HTTPException(403, "webhook timestamp too old (replayed request?)")
    if age < -MAX_SKEW_SECONDS:
        raise HTTPException(403, "webhook timestamp is in the future")


@router.post("/webhooks/sendgrid/events")
async def sendgrid_events(request: Request) -> dict:
    public_key = get_settings().sendgrid_webhook_public_key
    if not public_key:
        raise HTTPException(503, "SendGrid webhook verification key is not configured")
    signature = request.headers.get(SIGNATURE_HEADER)
    timestamp = request.headers.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise HTTPException(403, "unsigned request")
    check_timestamp(timestamp)
    raw = await request.body()
    if not request.app.state.verifiers.sendgrid(public_key, raw, signature, timestamp):
        log.warning("refused a SendGrid event batch with an invalid signature")
        raise HTTPException(403, "invalid signature")
    try:
        batch = json.loads(raw)
        if not isinstance(batch, list):
            raise ValueError("the body must be a JSON list of events")
        events = [sendgrid_event(item) for item in batch]
    except ValueError as exc:
        raise HTTPException(400, f"malformed event batch: {exc}") from None

    def apply():
        with session_scope() as session:
            return apply_provider_events(session, events)

    report = await run_in_threadpool(apply)
    log.info("SendGrid events: %s", report)
    return asdict(report)
