"""SendGrid Inbound Parse: emails customers send us (replies) onto feedback, phone tasks and consent.

The request must carry ``ORCH_SENDGRID_INBOUND_TOKEN`` as the password of HTTP Basic authentication
(SendGrid sends the one in the URL it is given); 503 until it is set, 403 for a wrong one, before the
form is read. Attachments are not read. Each email is applied once (its Message-ID), so SendGrid's
retries change nothing.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request

from channels.sendgrid import inbound as sendgrid
from channels.sendgrid.settings import SendGridSettings
from channels.settings import current
from orchestrator.inbound.email import handle_inbound_email
from orchestrator.web.common import in_transaction

log = logging.getLogger(__name__)
router = APIRouter()

PATH = "/webhooks/sendgrid/inbound"


@router.post(PATH)
async def sendgrid_inbound(request: Request) -> dict:
    token = current(SendGridSettings).inbound_token
    if token is None:
        raise HTTPException(503, "the inbound email webhook is not configured (ORCH_SENDGRID_INBOUND_TOKEN)")
    if not sendgrid.password_valid(request.headers.get("authorization"), token.get_secret_value()):
        log.warning("refused an inbound email post without the right password")
        raise HTTPException(403, "wrong or missing password", headers={"WWW-Authenticate": "Basic"})
    form = await request.form()
    fields = {name: value for name, value in form.multi_items() if isinstance(value, str)}  # no attachments
    try:
        message = sendgrid.parse_inbound(fields)
    except ValueError as exc:
        raise HTTPException(400, f"malformed inbound email: {exc}") from None

    outcome = await in_transaction(lambda session: handle_inbound_email(session, message))
    return {"kind": outcome.kind, "feedback_id": outcome.feedback_id, "phone_task_id": outcome.phone_task_id}
