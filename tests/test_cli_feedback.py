"""``orchestrator feedback list``: what customers told us lately, newest first, with what it answers."""

from __future__ import annotations

import json
from datetime import timedelta

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.ledger.campaigns import upsert_campaign
from orchestrator.models import CustomerFeedback, MessageStatus, utcnow
from tests.support.ledger import add_customers, add_messages


def feedback(*args: str):
    return CliRunner().invoke(app, ["feedback", "list", *args])


def test_feedback_newest_first_with_who_said_it_and_what_it_answers(db_url, monkeypatch):
    from orchestrator.cli.output import console

    monkeypatch.setattr(console, "_width", 200)  # each reply on one line of the table
    assert "Nothing heard from customers in the last 7d." in feedback().stdout
    ada, bea = add_customers(2)
    campaign = upsert_campaign("spring", "all", "marketing", "promo", None, "now")
    [survey] = add_messages([ada], template="promo", status=MessageStatus.sent, campaign_id=campaign)
    now = utcnow()
    with session_scope() as s:
        s.add_all([
            CustomerFeedback(customer_id=ada, channel="sms", body="Where is my parcel?", source="sms_reply",
                             created_at=now - timedelta(hours=3)),
            CustomerFeedback(customer_id=ada, channel="email", body="great offer", source="rating_page",
                             score=5, scale="csat", message_id=survey, created_at=now - timedelta(hours=2)),
            CustomerFeedback(customer_id=None, channel="email", body="Who are you?",
                             source="email_reply:unknown_sender", created_at=now - timedelta(hours=1)),
            CustomerFeedback(customer_id=bea, channel="sms", body="old news", source="sms_reply",
                             created_at=now - timedelta(days=10)),
        ])

    rows = json.loads(feedback("--json").stdout)

    assert [r["words"] for r in rows] == ["Who are you?", "great offer", "Where is my parcel?"]  # not the old
    stranger, answer, reply = rows
    assert stranger["customer"] is None and stranger["kind"] == "email reply, from an unknown sender"
    assert (answer["score"], answer["scale"], answer["kind"]) == (5, "csat", "survey answer (page)")
    assert "spring" in answer["answers"]  # the campaign its survey came with
    assert reply["kind"] == "SMS reply" and reply["answers"] is None
    texts = json.loads(feedback("--since", "2w", "--channel", "sms", "--json").stdout)
    assert [r["words"] for r in texts] == ["Where is my parcel?", "old news"]
    table = " ".join(feedback().stdout.split())
    assert "Where is my parcel?" in table and "5 (csat)" in table and "unknown" in table
    bad = feedback("--since", "yesterday")
    assert bad.exit_code == 2 and "is not a period" in bad.output
    typo = feedback("--channel", "fax")
    assert typo.exit_code == 2 and "unknown channel 'fax'" in typo.output
