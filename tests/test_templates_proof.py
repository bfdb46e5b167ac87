"""``orchestrator templates preview --send-to``: a proof through the real provider, marked as a test,
outside the ledger, its links acting on nobody, never to a suppressed address."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.consent import suppress_address
from orchestrator.db import session_scope
from orchestrator.links import verify_token
from orchestrator.models import Customer, Message
from tests.support.fakes.twilio import INVALID_NUMBER
from tests.support.flow_world import use_fake_providers
from tests.support.ledger import add_customers


def preview(*args: str):
    return CliRunner().invoke(app, ["templates", "preview", *args])


def ledger_rows() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(Message)) or 0


def test_an_email_proof_reaches_sendgrid_marked_as_a_test_and_its_links_act_on_nobody(
        sqlite_url, fake_sendgrid, monkeypatch, tmp_path):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    (ada,) = add_customers(1)
    with session_scope() as s:
        external_id = s.get(Customer, ada).external_id

    result = preview("spring_sale", "--channel", "email", "--customer", external_id,
                     "--send-to", "Proofs@Company.example", "--out", str(tmp_path / "p.html"))

    assert result.exit_code == 0, result.output
    assert "Proof sent to P***@c*** through sendgrid" in result.stdout
    [request] = fake_sendgrid.requests
    personalization = request.data["personalizations"][0]
    assert personalization["to"] == [{"email": "Proofs@company.example"}]  # the channel's spelling
    subject = personalization.get("subject") or request.data["subject"]
    assert subject.startswith("[TEST] ") and "20%" in subject
    text = next(c["value"] for c in request.data["content"] if c["type"] == "text/plain")
    assert "Hi Ada" in text  # rendered for the customer asked for...
    token = re.search(r"/unsubscribe/([\w.-]+)", text).group(1)
    assert verify_token(token, "unsubscribe").customer_id == 0  # ...but its links belong to nobody
    assert ledger_rows() == 0  # a proof is nobody's message: no ledger row, no cap used


def test_an_sms_proof_goes_to_the_number_given_unless_it_is_suppressed(sqlite_url, fake_twilio, monkeypatch):
    use_fake_providers(monkeypatch, twilio=fake_twilio)

    sent = preview("outage_notice", "--channel", "sms", "--send-to", "+1 415 555 0142")
    assert sent.exit_code == 0, sent.output
    [request] = fake_twilio.requests
    assert request.data["To"] == "+14155550142" and "card payments" in request.data["Body"].lower()

    with session_scope() as s:
        suppress_address(s, "sms", "+14155550143", "unsubscribed", "sms_keyword")
    refused = preview("outage_notice", "--channel", "sms", "--send-to", "+14155550143")
    assert refused.exit_code == 1 and "suppression list" in refused.output
    refused_by_provider = preview("outage_notice", "--channel", "sms", "--send-to", INVALID_NUMBER)
    assert refused_by_provider.exit_code == 1 and "did not take the proof" in refused_by_provider.output
    call = preview("outage_notice", "--channel", "phone", "--send-to", "+14155550142")
    assert call.exit_code == 1 and "task for an agent" in call.output
    typo = preview("outage_notice", "--channel", "sms", "--send-to", "not a number")
    assert typo.exit_code == 2 and "not a phone number" in typo.output
    assert [r.data["To"] for r in fake_twilio.requests] == ["+14155550142", INVALID_NUMBER]  # nothing else
    assert ledger_rows() == 0
