"""One-click unsubscribe (RFC 8058) behind the signed List-Unsubscribe link.

``POST /unsubscribe/{token}`` with ``List-Unsubscribe=One-Click`` unsubscribes without a login
(mail providers send it for the customer). ``GET`` never changes anything (link scanners
prefetch links): it shows what the link will do, a button that sends the same POST, and a
link to the preference centre. What an unsubscribe does: see
``orchestrator.audience.preferences.unsubscribe``.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from orchestrator.audience.preferences import CHOOSABLE_TOPICS, channel_labels, unsubscribe
from orchestrator.db import session_scope
from orchestrator.links import InvalidToken, LinkClaims, preferences_url, verify_token
from orchestrator.models import Customer
from orchestrator.web.common import PAGE_HEADERS, form_pairs, templates

router = APIRouter()

ONE_CLICK = ("List-Unsubscribe", "One-Click")


def claims_or_400(token: str, purpose: str) -> LinkClaims:
    try:
        return verify_token(token, purpose)
    except InvalidToken as exc:
        raise HTTPException(400, f"This link is not valid: {exc}.") from None


def what_it_stops(claims: LinkClaims) -> str:
    channel = channel_labels().get(claims.channel or "email", claims.channel or "email").lower()
    if claims.topic and claims.topic != "*":
        return f"{CHOOSABLE_TOPICS.get(claims.topic, claims.topic).lower()} by {channel}"
    return f"all {channel} from us except required notices such as security alerts"


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str):
    claims = claims_or_400(token, "unsubscribe")
    return templates.TemplateResponse(
        request, "unsubscribe_confirm.html",
        {"stops": what_it_stops(claims), "preferences_url": preferences_url(claims.customer_id)},
        headers=PAGE_HEADERS,
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
async def unsubscribe_now(request: Request, token: str):
    claims = claims_or_400(token, "unsubscribe")
    if ONE_CLICK not in form_pairs(await request.form()):
        raise HTTPException(400, "expected List-Unsubscribe=One-Click")

    def apply() -> str:
        with session_scope() as session:
            if session.get(Customer, claims.customer_id) is None:
                raise HTTPException(404, "We could not find your subscription.")
            return unsubscribe(session, claims.customer_id, claims.channel, claims.topic,
                               message_id=claims.message_id)

    done = await run_in_threadpool(apply)
    return templates.TemplateResponse(
        request, "unsubscribed.html",
        {"done": done, "preferences_url": preferences_url(claims.customer_id)},
        headers=PAGE_HEADERS,
    )
