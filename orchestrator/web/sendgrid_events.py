"""SendGrid Event Webhook: signed batches of delivery events onto the ledger.

Refused with 4xx and no effect: a missing or wrong signature, a timestamp more than ten
minutes old (a replay) or more than five minutes ahead, a body that is not a JSON list of
events. Events are idempotent on sg_event_id, so SendGrid's retries change nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, Request

from channels.sendgrid import webhook as sendgrid
from channels.sendgrid.settings import SendGridSettings
from channels.settings import current
from orchestrator.inbound.delivery_events import apply_provider_events
from orchestrator.web.common import in_transaction

log = logging.getLogger(__name__)
router = APIRouter()

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
    public_key = current(SendGridSettings).webhook_public_key
    if not public_key:
        raise HTTPException(503, "SendGrid webhook verification key is not configured")
    signature = request.headers.get(sendgrid.SIGNATURE_HEADER)
    timestamp = request.headers.get(sendgrid.TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise HTTPException(403, "unsigned request")
    check_timestamp(timestamp)
    raw = await request.body()
    if not sendgrid.signature_valid(public_key, raw, signature, timestamp):
        log.warning("refused a SendGrid event batch with an invalid signature")
        raise HTTPException(403, "invalid signature")
    try:
        events = sendgrid.parse_events(raw)
    except ValueError as exc:
        raise HTTPException(400, f"malformed event batch: {exc}") from None

    report = await in_transaction(lambda session: apply_provider_events(session, events))
    log.info("SendGrid events: %s", report)
    return asdict(report)
