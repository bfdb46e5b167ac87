"""Email replies through SendGrid's Inbound Parse webhook: kept as feedback with a phone task, an
opt-out honoured as the unsubscribe link would, automatic replies left alone, each email once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent
from orchestrator.db import session_scope
from orchestrator.models import ConsentEvent, CustomerFeedback, PhoneTask, utcnow
from orchestrator.reports.report import build_report
from orchestrator.reports.slices import ReportSlice
from orchestrator.settings import get_settings
from tests.support.web import (
    add_customer,
    add_message,
    web_fixture,  # noqa: F401
)

TOKEN = "inbound-secret"
URL = "/webhooks/sendgrid/inbound"
QUOTED = ("\n\nOn Tue, 1 Dec 2026 at 10:00, Example Co <hello@example.com> wrote:\n"
          "> Hi Ada, enjoy 20% off every annual plan.\n> Unsubscribe: https://example.com/u/x\n")


@pytest.fixture
def inbound(web, sqlite_url, monkeypatch):
    monkeypatch.setenv("ORCH_SENDGRID_INBOUND_TOKEN", TOKEN)
    get_settings.cache_clear()
    return web


def post(web, *, subject: str, text: str, sender: str = "Ada <ADA@example.com>",
         message_id: str = "<m1@mail>", headers: str = "", auth: tuple[str, str] | None = ("inbound", TOKEN),
         files=None):
    """A post as Inbound Parse makes it (its multipart form, the password of the URL)."""
    envelope = json.dumps({"to": ["replies@parse.example.com"], "from": sender.split("<")[-1].rstrip(">")})
    fields = {"from": sender, "to": "replies@parse.example.com", "subject": subject, "text": text,
              "headers": f"Message-ID: {message_id}\nFrom: {sender}\n{headers}", "envelope": envelope}
    return web.client.post(URL, data=fields, files=files, auth=auth)


def feedback() -> list[CustomerFeedback]:
    with session_scope() as s:
        return list(s.exec(select(CustomerFeedback).order_by(CustomerFeedback.id)))


def tasks() -> list[PhoneTask]:
    with session_scope() as s:
        return list(s.exec(select(PhoneTask)))


def replied_to() -> int:
    with session_scope() as s:
        return build_report(s, ReportSlice(since=utcnow() - timedelta(days=30)))["funnel"]["replies"]


def test_a_reply_is_kept_in_the_customers_own_words_with_a_task_once(inbound):
    ada = add_customer()
    add_message(ada)

    question = "Does the code work on monthly plans?"
    answer = post(inbound, subject="Re: A spring thank-you", text=question + QUOTED,
                  files={"attachment1": ("invoice.pdf", b"%PDF-1.4 ...", "application/pdf")})

    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "feedback"
    [kept] = feedback()
    assert (kept.customer_id, kept.channel, kept.source) == (ada.id, "email", "email_reply")
    assert kept.body == "Re: A spring thank-you\n\nDoes the code work on monthly plans?"  # not the quote
    [task] = tasks()
    assert task.customer_id == ada.id and "monthly plans" in task.script
    assert task.reason == "customer replied by email"
    assert replied_to() == 1  # the report counts the email it answers as replied to

    again = post(inbound, subject="Re: A spring thank-you", text=question + QUOTED)
    assert again.json()["kind"] == "duplicate" and len(feedback()) == 1 and len(tasks()) == 1


def test_unsubscribe_by_reply_leaves_email_but_not_required_notices(inbound):
    ada = add_customer()

    bare = post(inbound, subject="Re: A spring thank-you", text="Unsubscribe" + QUOTED)
    worded = post(inbound, subject="Re: offer", message_id="<m2@mail>",
                  text="Please stop emailing me. Also my last invoice is wrong.")

    assert bare.json()["kind"] == worded.json()["kind"] == "opt_out"
    with session_scope() as s:
        consent = current_consent(s, [ada.id])
        sources = {e.source for e in s.exec(select(ConsentEvent))}
    assert not consent_allows(consent, ada.id, "email", "marketing")
    assert consent_allows(consent, ada.id, "email", "security")  # a security alert still reaches her
    assert consent_allows(consent, ada.id, "sms", "marketing")  # only email was left
    assert sources == {"email_reply:opt_out"}
    assert [f.source for f in feedback()] == ["email_reply:opt_out"] * 2  # every word kept
    [task] = tasks()  # "Unsubscribe" alone is done; the invoice needs a person
    assert "invoice is wrong" in task.script


def test_automatic_replies_and_strangers_open_no_task(inbound):
    add_customer()

    away = post(inbound, subject="Out of office", text="I am away until Monday.",
                headers="Auto-Submitted: auto-replied\n")
    stranger = post(inbound, subject="Hello", text="Who are you?", sender="someone@else.example",
                    message_id="<m3@mail>")

    assert away.json()["kind"] == "automatic" and stranger.json()["kind"] == "feedback"
    [kept] = feedback()  # the stranger's words, not the auto-reply
    assert kept.customer_id is None and kept.source == "email_reply:unknown_sender"
    assert tasks() == []


def test_the_webhook_needs_its_password_and_a_sender(web, sqlite_url, monkeypatch):
    add_customer()
    assert post(web, subject="Hi", text="x").status_code == 503  # not configured
    monkeypatch.setenv("ORCH_SENDGRID_INBOUND_TOKEN", TOKEN)
    get_settings.cache_clear()
    for auth in (None, ("inbound", "wrong")):
        refused = post(web, subject="Hi", text="x", auth=auth)
        assert refused.status_code == 403 and refused.headers["www-authenticate"] == "Basic"
    no_sender = web.client.post(URL, data={"subject": "Hi", "text": "x"}, auth=("inbound", TOKEN))
    assert no_sender.status_code == 400
    assert feedback() == [] and tasks() == []


def test_own_words_stop_at_the_quoted_email():
    from orchestrator.inbound.email import own_words

    assert own_words("Thanks!\n\nOn Mon, 30 Nov 2026, Example Co wrote:\n> old") == "Thanks!"
    assert own_words("Yes please\n-----Original Message-----\nFrom: x") == "Yes please"
    assert own_words("> quoted only\nMine") == "Mine"
    assert own_words("Fine.\n" + "_" * 32 + "\nFrom: Example Co") == "Fine."
    wrapped = "Sure\n\nOn Tue, Dec 1, 2026 at 10:00 AM Example Co <hello@example.com>\nwrote:\n\n> old"
    assert own_words(wrapped) == "Sure"


