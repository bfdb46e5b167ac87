"""The preference centre: channels, topics, frequency, quiet hours, do-not-contact.

Reached from the signed link in every marketing message (``orchestrator.links.preferences_url``).
Plain HTML forms, no JavaScript. The form posts back to the same signed URL and the result is
shown after a redirect (so reloading the page does not post again).

Cross-site request forgery: nothing ambient authorises a change (no cookie, no session); the
signed token in the URL is the credential, so another site can only forge a post if the token
leaked. Even then the post is refused because its Origin (or Referer) is not ours; the pages
keep their URL to themselves (Referrer-Policy: same-origin).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from orchestrator.audience.preferences import (
    CHOOSABLE_TOPICS,
    PreferenceChoices,
    channel_labels,
    current_choices,
    reachable_channels,
    required_topics,
    save_choices,
    texts_stopped,
)
from orchestrator.clock_times import parse_clock
from orchestrator.consent import FREQUENCIES
from orchestrator.db import session_scope
from orchestrator.models import Customer
from orchestrator.web.common import PAGE_HEADERS, form_pairs, require_same_origin, templates
from orchestrator.web.unsubscribe import claims_or_400

router = APIRouter()

FREQUENCY_LABELS = {
    "any": "Whenever there is something worth telling you",
    "daily": "At most once a day",
    "weekly": "At most once a week",
    "monthly": "At most once a month",
}
assert tuple(FREQUENCY_LABELS) == FREQUENCIES


@dataclass
class ParsedForm:
    choices: PreferenceChoices
    errors: list[str] = field(default_factory=list)


def _clock(value: str, label: str, errors: list[str]) -> str | None:
    value = value.strip()
    if not value:
        return None
    try:
        return f"{parse_clock(value):%H:%M}"
    except ValueError:
        errors.append(f"{label} must be a time such as 21:00.")
        return None


def parse_form(pairs: list[tuple[str, str]]) -> ParsedForm:
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)

    def one(key: str) -> str:
        return (values.get(key) or [""])[0]

    errors: list[str] = []
    labels = channel_labels()
    channels = set(values.get("channel", []))
    topics = set(values.get("topic", []))
    if channels - set(labels) or topics - set(CHOOSABLE_TOPICS):
        errors.append("Some of the choices sent are not ones we offer.")
    frequency = one("frequency") or "any"
    if frequency not in FREQUENCIES:
        errors.append("Please choose how often you want to hear from us.")
    preferred = one("preferred_channel") or None
    if preferred is not None and preferred not in labels:
        errors.append("Please choose a preferred channel from the list.")
    turn_back_on = set()
    for value in values.get("turn_back_on", []):
        channel, _, topic = value.partition(":")
        if channel not in labels or topic not in CHOOSABLE_TOPICS:
            errors.append("Some of the choices sent are not ones we offer.")
        turn_back_on.add((channel, topic))
    quiet_start = _clock(one("quiet_start"), "The start of your quiet hours", errors)
    quiet_end = _clock(one("quiet_end"), "The end of your quiet hours", errors)
    if (quiet_start is None) != (quiet_end is None):
        errors.append("Quiet hours need both a start and an end (or leave both empty).")
    elif quiet_start is not None and quiet_start == quiet_end:
        errors.append("Quiet hours need a start and an end that differ.")
    choices = PreferenceChoices(
        channels=channels & set(labels),
        topics=topics & set(CHOOSABLE_TOPICS),
        frequency=frequency if frequency in FREQUENCIES else "any",
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        do_not_contact=one("do_not_contact") == "yes",
        preferred_channel=preferred if preferred in labels else None,
        turn_back_on=turn_back_on,
    )
    return ParsedForm(choices, errors)


def _page(request: Request, customer: Customer, choices: PreferenceChoices, *, stopped: bool,
          reachable: list[str], saved: bool = False, errors: list[str] | None = None,
          status_code: int = 200):
    labels = channel_labels()
    return templates.TemplateResponse(
        request, "preferences.html",
        {
            "customer": customer,
            "choices": choices,
            "channels": {ch: labels[ch] for ch in reachable},
            "topics": CHOOSABLE_TOPICS,
            "all_channels": labels,
            "frequencies": FREQUENCY_LABELS,
            "required_topics": required_topics(),
            "saved": saved,
            "texts_stopped": stopped,
            "errors": errors or [],
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def _customer(session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise HTTPException(404, "We could not find your preferences.")
    return customer


@router.get("/preferences/{token}", response_class=HTMLResponse)
def show_preferences(request: Request, token: str, saved: str = ""):
    claims = claims_or_400(token, "preferences")
    with session_scope() as session:
        customer = _customer(session, claims.customer_id)
        choices = current_choices(session, customer)
        stopped = texts_stopped(session, customer)
        reachable = reachable_channels(session, customer)
    return _page(request, customer, choices, stopped=stopped, reachable=reachable, saved=saved == "1")


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(request: Request, token: str):
    claims = claims_or_400(token, "preferences")
    require_same_origin(request)
    parsed = parse_form(form_pairs(await request.form()))

    def apply():
        with session_scope() as session:
            customer = _customer(session, claims.customer_id)
            # Channels we hold no address for are not on the page: they keep their consent.
            reachable = reachable_channels(session, customer)
            hidden = set(channel_labels()) - set(reachable)
            parsed.choices.channels |= current_choices(session, customer).channels & hidden
            if not parsed.errors:
                save_choices(session, customer, parsed.choices)
            return customer, texts_stopped(session, customer), reachable

    customer, stopped, reachable = await run_in_threadpool(apply)
    if parsed.errors:
        return _page(request, customer, parsed.choices, stopped=stopped, reachable=reachable,
                     errors=parsed.errors, status_code=400)
    return RedirectResponse(f"{request.url.path}?saved=1", status_code=303, headers=PAGE_HEADERS)
