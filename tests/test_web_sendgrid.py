"""SendGrid Event Webhook: signed events land in the ledger once; anything else changes nothing."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent
from orchestrator.db import session_scope
from orchestrator.models import ConsentEvent, DeliveryEvent, Message, Suppression
from tests.support.signing import SendGridSigner, sendgrid_event
from tests.support.web import add_customer, add_message, reload, web_fixture  # noqa: F401

URL = "/webhooks/sendgrid/events"


def post(web, events, timestamp=None):
    body, headers = web.signer.request(events, timestamp)
    return web.client.post(URL, content=body, headers=headers)


def table(model):
    with session_scope() as session:
        return list(session.exec(select(model)))


def test_delivery_events_move_the_message_forward_and_a_repeat_changes_nothing(web, db_url):
    message = add_message(add_customer())
    batch = [sendgrid_event(kind, message.id) for kind in ("processed", "delivered", "open")]
    first = post(web, batch)
    assert first.status_code == 200, first.text
    assert first.json()["status_changes"] == 1 and first.json()["duplicates"] == 0
    row = reload(Message, message.id)
    assert row.status == "delivered" and row.delivered_at is not None
    assert {(e.event_type, e.message_id) for e in table(DeliveryEvent)} == {
        ("processed", message.id), ("delivered", message.id), ("open", message.id)}

    again = post(web, batch)  # SendGrid retries a batch it thinks failed
    assert again.status_code == 200
    assert again.json()["duplicates"] == 3 and again.json()["status_changes"] == 0
    assert len(table(DeliveryEvent)) == 3
    assert reload(Message, message.id).updated_at == row.updated_at


def test_a_late_processed_event_never_moves_a_delivered_message_back(web, sqlite_url):
    message = add_message(add_customer(), status="sending")  # the report overtook dispatch
    assert post(web, [sendgrid_event("delivered", message.id)]).status_code == 200
    assert post(web, [sendgrid_event("processed", message.id)]).status_code == 200
    row = reload(Message, message.id)
    assert row.status == "delivered"
    assert (row.provider, row.provider_message_id) == ("sendgrid", "sgmsg")


def test_events_find_the_message_by_the_provider_id_when_custom_args_are_missing(web, sqlite_url):
    message = add_message(add_customer(), provider_message_id="sgmsg")
    response = post(web, [sendgrid_event("delivered", None, sg_message_id="sgmsg.filterdrecv-1.0")])
    assert response.json()["unmatched"] == 0
    assert reload(Message, message.id).status == "delivered"


def test_a_provider_id_shared_by_a_merged_request_identifies_no_single_message(web, sqlite_url):
    ada = add_message(add_customer(), provider_message_id="batch1")
    bob = add_message(add_customer(external_id="c-bob", email="bob@example.com", phone=None),
                      provider_message_id="batch1")
    response = post(web, [sendgrid_event("delivered", None, sg_message_id="batch1.filterdrecv-1.0")])
    assert response.json()["unmatched"] == 1  # which of the two? custom_args would say; guessing would not
    assert {reload(Message, m.id).status for m in (ada, bob)} == {"sent"}


def test_bounces_and_spam_reports_suppress_the_address(web, db_url):
    ada = add_customer()
    bob = add_customer(external_id="c-bob", email="bob@example.com", phone=None)
    bounced = add_message(ada)
    reported = add_message(bob)
    response = post(web, [
        sendgrid_event("bounce", bounced.id, type="bounce", reason="550 5.1.1 <ada@example.com> unknown"),
        sendgrid_event("spamreport", reported.id, email="bob@example.com"),
    ])
    assert response.status_code == 200
    assert {(s.channel, s.address, s.reason) for s in table(Suppression)} == {
        ("email", "ada@example.com", "bounce"), ("email", "bob@example.com", "spamreport")}
    row = reload(Message, bounced.id)
    assert row.status == "bounced"
    assert "ada@example.com" not in row.last_error  # personal data is masked in the reason


def test_a_blocked_bounce_fails_the_message_but_keeps_the_address(web, sqlite_url):
    message = add_message(add_customer())
    post(web, [sendgrid_event("bounce", message.id, type="blocked", reason="IP reputation")])
    assert reload(Message, message.id).status == "failed"
    assert table(Suppression) == []


def test_unsubscribes_record_an_opt_out_with_source_and_time(web, db_url):
    ada = add_customer()
    message = add_message(ada, topic="loyalty")
    response = post(web, [sendgrid_event("group_unsubscribe", message.id, asm_group_id=7)])
    assert response.json()["opt_outs"] == 1
    [event] = table(ConsentEvent)
    assert (event.channel, event.topic, event.state, event.source) == (
        "email", "loyalty", "opted_out", "webhook:sendgrid")
    assert event.created_at is not None

    post(web, [sendgrid_event("unsubscribe", message.id)])
    with session_scope() as session:
        consent = current_consent(session, [ada.id])
    assert not consent_allows(consent, ada.id, "email", "marketing")
    assert consent_allows(consent, ada.id, "sms", "marketing")


def test_an_unsubscribe_without_a_message_id_finds_the_customer_by_address(web, sqlite_url):
    ada = add_customer(email="Ada@Example.com")
    post(web, [sendgrid_event("unsubscribe", None, email="ada@example.com", sg_message_id="unknown.x")])
    with session_scope() as session:
        consent = current_consent(session, [ada.id])
    assert not consent_allows(consent, ada.id, "email", "marketing")


@pytest.mark.parametrize("case", ["unsigned", "tampered", "other_key", "replayed", "future", "bad_signature"])
def test_unsigned_tampered_or_replayed_batches_are_refused_and_change_nothing(web, sqlite_url, case):
    message = add_message(add_customer())
    events = [sendgrid_event("bounce", message.id, type="bounce")]
    body, headers = web.signer.request(events)
    if case == "unsigned":
        headers = {"Content-Type": "application/json"}
    elif case == "tampered":
        body = body.replace(b"bounce", b"delivered")
    elif case == "other_key":
        body, headers = SendGridSigner.generate().request(events)
    elif case == "replayed":
        body, headers = web.signer.request(events, timestamp=int(time.time()) - 11 * 60)
    elif case == "future":
        body, headers = web.signer.request(events, timestamp=int(time.time()) + 6 * 60)
    elif case == "bad_signature":
        headers = {**headers, "X-Twilio-Email-Event-Webhook-Signature": "not base64 at all!"}
    response = web.client.post(URL, content=body, headers=headers)
    assert response.status_code == 403
    assert table(DeliveryEvent) == [] and table(Suppression) == []
    assert reload(Message, message.id).status == "sent"


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400),
    (b'{"event": "delivered"}', 400),  # one event, not a list of them
    (b'[{"no_event": true}]', 400),
    (b"GOOD_EVENT_THEN_42", 400),  # one good event does not get in with a bad one
    (b"\xff\xfe", 403),  # not UTF-8: cannot even be verified
])
def test_malformed_batches_are_refused_whole(web, sqlite_url, body, status):
    message = add_message(add_customer())
    if body == b"GOOD_EVENT_THEN_42":
        body = json.dumps([sendgrid_event("delivered", message.id), 42]).encode()
    signed_body, headers = web.signer.request(body)
    response = web.client.post(URL, content=signed_body, headers=headers)
    assert response.status_code == status
    assert table(DeliveryEvent) == []
    assert reload(Message, message.id).status == "sent"


def test_without_a_verification_key_nothing_is_accepted(web, sqlite_url, monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.delenv("ORCH_SENDGRID_WEBHOOK_PUBLIC_KEY")
    get_settings.cache_clear()
    response = post(web, [sendgrid_event("delivered", 1)])
    assert response.status_code == 503
    assert table(DeliveryEvent) == []


def test_oversized_bodies_are_refused_with_413_declared_or_streamed(web, sqlite_url):
    # SendGrid's batches reach about 768 KB: up to 1 MiB is accepted here, 256 KiB elsewhere.
    big = b"[" + b" " * (1100 * 1024) + b"]"
    _, headers = web.signer.request(big)
    assert web.client.post(URL, content=big, headers=headers).status_code == 413
    assert web.client.post("/webhooks/twilio/inbound", content=b"x" * (300 * 1024)).status_code == 413

    def chunks(size):  # no Content-Length: counted as it streams in
        for _ in range(size // (32 * 1024)):
            yield b" " * (32 * 1024)

    assert web.client.post(URL, content=chunks(1100 * 1024), headers=headers).status_code == 413
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "read the body first"}
    inbound = web.client.post("/webhooks/twilio/inbound", content=chunks(300 * 1024), headers=form)
    assert inbound.status_code == 413
    assert table(DeliveryEvent) == []

    near_limit = [sendgrid_event("delivered", None, event_id=f"e{i}", pad="x" * 600) for i in range(1000)]
    body, headers = web.signer.request(near_limit)
    assert 512 * 1024 < len(body) < 1024 * 1024
    assert web.client.post(URL, content=body, headers=headers).status_code == 200


def test_the_same_batch_delivered_concurrently_takes_effect_once(db_url):
    from concurrent.futures import ThreadPoolExecutor

    from channels.sendgrid.webhook import parse_event as map_event
    from orchestrator.inbound.delivery_events import apply_provider_events

    message = add_message(add_customer())
    batch = [sendgrid_event("bounce", message.id, type="bounce"), sendgrid_event("delivered", message.id)]

    def deliver(_):
        with session_scope() as session:
            return apply_provider_events(session, [map_event(e) for e in batch])

    with ThreadPoolExecutor(6) as pool:
        reports = list(pool.map(deliver, range(6)))
    assert sum(r.duplicates for r in reports) == 5 * len(batch)
    assert sum(r.suppressed for r in reports) == 1
    assert len(table(DeliveryEvent)) == 2 and len(table(Suppression)) == 1
    assert reload(Message, message.id).status == "bounced"


def test_a_bounce_takes_the_address_out_of_the_next_decision(web, sqlite_url):
    from datetime import UTC, datetime

    from orchestrator.policy import Intent, decide_chunk, load_policy

    ada = add_customer(email="Ada@Example.com")  # providers report addresses in their own spelling
    message = add_message(ada, topic="outage")
    post(web, [sendgrid_event("bounce", message.id, email="ada@example.com", type="bounce")])
    assert [s.address for s in table(Suppression)] == ["Ada@Example.com"]
    with session_scope() as session:
        [decision, *_] = decide_chunk(session, [Intent(ada.id, "outage", "outage_notice", "inc-1")],
                                      datetime(2026, 3, 10, 15, tzinfo=UTC), load_policy())
    assert decision.channel != "email"
