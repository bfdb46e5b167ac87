"""Dispatch end to end with the shipped templates and the real SDK adapters against the fake providers."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from sqlmodel import select

from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from orchestrator.consent import current_consent
from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import Customer, MessageStatus, OutboxEntry, Suppression, utcnow
from orchestrator.settings import REPO_ROOT
from tests.support.fakes import FakeSendGrid, FakeTwilio
from tests.support.fakes.twilio import INVALID_NUMBER
from tests.support.ledger import add_customers, add_messages, messages

SAMPLE = yaml.safe_load((REPO_ROOT / "templates" / "sample_data.yaml").read_text())
FACTS = SAMPLE["messages"]["outage_notice"]


@pytest.fixture
def adapters(fake_sendgrid: FakeSendGrid, fake_twilio: FakeTwilio):
    email = SendGridEmailAdapter(api_key=fake_sendgrid.api_key, host=fake_sendgrid.url, timeout=2,
                                 concurrency=4)
    sms = TwilioSmsAdapter(account_sid=fake_twilio.account_sid, auth_token=fake_twilio.auth_token,
                           from_number="+15557654321", base_url=fake_twilio.url, timeout=2, concurrency=4)
    yield {"email": email, "sms": sms}
    email.close()
    sms.close()


def outage(customer_ids: list[int], channel: str, dedupe: str = "incident-2291") -> list[int]:
    return add_messages(customer_ids, channel=channel, template="outage_notice", topic="outage",
                        tone="empathetic", data=FACTS, dedupe=dedupe)


def test_outage_notice_reaches_the_providers_once_and_their_verdicts_are_recorded(
    sqlite_url, adapters, fake_sendgrid, fake_twilio
):
    ok, opted_out, invalid, by_email = add_customers(4)
    with session_scope() as s:
        s.get(Customer, invalid).phone = INVALID_NUMBER
    fake_twilio.opted_out.add("+14155550001")
    sms_ids = outage([ok, opted_out, invalid], "sms")
    (email_id,) = outage([by_email], "email")

    report = dispatch_due(adapters=adapters)

    rows = messages()
    sent_sms, refused, bad_number = (rows[i] for i in sms_ids)
    assert sent_sms.status == MessageStatus.sent and sent_sms.provider == "twilio"
    assert sent_sms.provider_message_id.startswith("SM")
    body = fake_twilio.requests_for(sent_sms.id)[0].data["Body"]
    assert "card payments are failing" in body and "Next update by 14:30 UTC" in body
    assert (refused.status, refused.reason_codes[-1]) == ("failed", "permanent:unsubscribed")
    assert (bad_number.status, bad_number.reason_codes[-1]) == ("failed", "permanent:invalid_address")
    assert rows[email_id].status == MessageStatus.sent and rows[email_id].provider == "sendgrid"
    (mail,) = fake_sendgrid.requests_for(email_id)
    assert mail.data["custom_args"] == {"message_id": str(email_id)}
    assert all(len(fake_twilio.requests_for(i)) == 1 for i in sms_ids)
    assert report.total("sent") == 2 and report.reasons() == {
        "permanent:unsubscribed": 1, "permanent:invalid_address": 1
    }
    with session_scope() as s:
        assert current_consent(s, [opted_out]) == {(opted_out, "sms", "*"): "opted_out"}
        # In Twilio's word for 21211, as its status callbacks say it too.
        assert [(x.channel, x.address, x.reason) for x in s.exec(select(Suppression))] == [
            ("sms", INVALID_NUMBER, "invalid_number")]


def test_a_rate_limited_provider_defers_the_message_and_the_next_sweep_sends_it_once(
    sqlite_url, adapters, fake_twilio
):
    now = utcnow()
    (mid,) = outage(add_customers(1), "sms")
    fake_twilio.fail_next(1, "rate_limit")

    dispatch_due(now=now, adapters=adapters)
    row = messages([mid])[mid]
    # It waits the provider's Retry-After (2 s), not the error backoff, for the SMS lane.
    assert row.status == MessageStatus.deferred and row.send_at == now + timedelta(seconds=2)
    assert row.reason_codes[-1] == "pace:sms" and "rate" in row.last_error.lower()

    assert dispatch_due(now=now + timedelta(seconds=1), adapters=adapters).processed == 0  # not due yet
    dispatch_due(now=row.send_at, adapters=adapters)
    row = messages([mid])[mid]
    assert row.status == MessageStatus.sent and row.attempts == 2
    assert [r.status for r in fake_twilio.requests_for(mid)] == [429, 201]


def test_without_credentials_the_outbox_records_each_message_once(db_url):
    ids = outage(add_customers(3), "email") + outage(add_customers(2), "sms", dedupe="sms")

    first = dispatch_due()
    second = dispatch_due()

    assert first.total("sent") == 5 and second.processed == 0
    with session_scope() as s:
        entries = s.exec(select(OutboxEntry)).all()
    assert sorted(e.message_id for e in entries) == sorted(ids)
    assert {messages(ids)[i].provider for i in ids} == {"outbox"}
