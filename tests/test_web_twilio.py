"""Twilio status callbacks and inbound SMS: signed on the public URL, applied exactly once."""

from __future__ import annotations

import pytest
from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent, record_consent
from orchestrator.db import session_scope
from orchestrator.models import (
    ConsentEvent,
    CustomerFeedback,
    DeliveryEvent,
    Message,
    PhoneTask,
    Suppression,
    SuppressionEvent,
)
from tests.support.signing import TWILIO_ACCOUNT_SID, twilio_headers, twilio_sid
from tests.support.web import (  # noqa: F401
    PUBLIC_BASE_URL,
    TWILIO_TOKEN,
    add_customer,
    add_message,
    reload,
    web_fixture,
)

PHONE = "+14155550100"


def table(model):
    with session_scope() as session:
        return list(session.exec(select(model)))


def status_callback(web, message_id, status, sid="SM0001", error_code=None, sign_url=None, to=PHONE):
    path = f"/webhooks/twilio/status?message_id={message_id}"
    params = {"MessageSid": twilio_sid(sid), "MessageStatus": status, "To": to, "From": "+15005550006",
              "AccountSid": TWILIO_ACCOUNT_SID}
    if error_code:
        params["ErrorCode"] = error_code
    headers = twilio_headers(TWILIO_TOKEN, sign_url or PUBLIC_BASE_URL + path, params)
    return web.client.post(path, data=params, headers=headers)


def inbound(web, body, sid="SMin1", sender=PHONE):
    params = {"MessageSid": twilio_sid(sid), "From": sender, "To": "+15005550006", "Body": body,
              "AccountSid": TWILIO_ACCOUNT_SID}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/inbound", params)
    return web.client.post("/webhooks/twilio/inbound", data=params, headers=headers)


def sms_consent(customer_id, topic="marketing"):
    with session_scope() as session:
        return consent_allows(current_consent(session, [customer_id]), customer_id, "sms", topic)


def test_status_callbacks_update_the_ledger_once(web, db_url):
    message = add_message(add_customer(), channel="sms", status="sending")
    assert status_callback(web, message.id, "sent").status_code == 200
    assert reload(Message, message.id).status == "sent"
    assert status_callback(web, message.id, "delivered").json()["status_changes"] == 1
    row = reload(Message, message.id)
    assert row.status == "delivered" and row.delivered_at is not None

    repeat = status_callback(web, message.id, "delivered")
    assert repeat.json()["duplicates"] == 1 and repeat.json()["status_changes"] == 0
    assert status_callback(web, message.id, "sent", sid="SM0001").json()["status_changes"] == 0
    assert reload(Message, message.id).status == "delivered"
    sid = twilio_sid("SM0001")
    assert sorted(e.provider_event_id for e in table(DeliveryEvent)) == [f"{sid}:delivered", f"{sid}:sent"]


def test_permanent_failures_suppress_the_number_and_temporary_ones_do_not(web, db_url):
    customer = add_customer()
    dead = add_message(customer, channel="sms", dedupe_key="a")
    unlucky = add_message(customer, channel="sms", dedupe_key="b")
    status_callback(web, unlucky.id, "undelivered", sid="SM0002", error_code="30003")  # handset off
    assert table(Suppression) == []
    status_callback(web, dead.id, "failed", sid="SM0001", error_code="30005")  # unknown number
    suppressed = [(s.channel, s.address, s.reason) for s in table(Suppression)]
    assert suppressed == [("sms", PHONE, "unknown_number")]
    assert reload(Message, dead.id).status == "failed"
    assert reload(Message, unlucky.id).status == "failed"


def test_an_opted_out_recipient_error_records_the_opt_out(web, sqlite_url):
    customer = add_customer()
    message = add_message(customer, channel="sms")
    status_callback(web, message.id, "failed", error_code="21610")
    assert not sms_consent(customer.id)
    assert [s.reason for s in table(Suppression)] == ["unsubscribed"]


def test_the_message_is_found_by_its_sid_without_our_id(web, sqlite_url):
    message = add_message(add_customer(), channel="sms", provider_message_id=twilio_sid("SMabc"))
    params = {"MessageSid": twilio_sid("SMabc"), "MessageStatus": "delivered",
              "AccountSid": TWILIO_ACCOUNT_SID}
    path = "/webhooks/twilio/status"
    web.client.post(path, data=params, headers=twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, params))
    assert reload(Message, message.id).status == "delivered"


@pytest.mark.parametrize("case", ["unsigned", "tampered", "internal_url", "other_token"])
def test_unsigned_or_tampered_callbacks_are_refused_and_change_nothing(web, sqlite_url, case):
    message = add_message(add_customer(), channel="sms")
    path = f"/webhooks/twilio/status?message_id={message.id}"
    params = {"MessageSid": twilio_sid("SM1"), "MessageStatus": "failed", "ErrorCode": "30005", "To": PHONE,
              "AccountSid": TWILIO_ACCOUNT_SID}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, params)
    if case == "unsigned":
        headers = {}
    elif case == "tampered":
        params = {**params, "To": "+14155550199"}
    elif case == "internal_url":  # signed for the URL this process sees, not the public one
        headers = twilio_headers(TWILIO_TOKEN, "http://testserver" + path, params)
    elif case == "other_token":
        headers = twilio_headers("someone-else", PUBLIC_BASE_URL + path, params)
    response = web.client.post(path, data=params, headers=headers)
    assert response.status_code == 403
    assert table(DeliveryEvent) == [] and table(Suppression) == []
    assert reload(Message, message.id).status == "sent"


def test_a_signed_callback_without_the_required_fields_is_refused(web, sqlite_url):
    path = "/webhooks/twilio/status"
    params = {"MessageStatus": "delivered"}
    response = web.client.post(path, data=params,
                               headers=twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, params))
    assert response.status_code == 400
    assert table(DeliveryEvent) == []


@pytest.mark.parametrize("body", ["STOP", "stop", " Stop ", "\tQUIT\n", "unsubscribe", "Cancel", "end",
                                  "StopAll", "revoke", "OPTOUT", "stop."])
def test_opt_out_keywords_in_any_case_and_spacing(web, sqlite_url, body):
    customer = add_customer()
    response = inbound(web, body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Message>" not in response.text  # Twilio itself confirms the opt-out
    assert not sms_consent(customer.id)
    assert sms_consent(customer.id, "security") is False
    [event] = table(ConsentEvent)
    assert (event.channel, event.topic, event.state, event.source) == ("sms", "*", "opted_out", "sms_keyword")
    assert [(s.address, s.reason) for s in table(Suppression)] == [(PHONE, "unsubscribed")]


def test_stop_beats_an_earlier_narrower_opt_in_and_start_opts_back_in(web, sqlite_url):
    customer = add_customer()
    with session_scope() as session:
        record_consent(session, customer.id, "sms", "marketing", "opted_in", "import")
    inbound(web, "STOP", sid="SM1")
    assert not sms_consent(customer.id, "marketing")
    for sid, word in (("SM2", "start"), ("SM3", " Yes "), ("SM4", "UNSTOP")):
        inbound(web, "STOP", sid=sid + "x")
        inbound(web, word, sid=sid)
        assert sms_consent(customer.id, "outage"), word
        assert table(Suppression) == []


def test_stop_from_an_unknown_number_holds_for_a_customer_imported_later(web, sqlite_url):
    inbound(web, "STOP", sender="+14155550177")
    assert [(s.address, s.reason) for s in table(Suppression)] == [("+14155550177", "unsubscribed")]


def test_start_lifts_a_provider_opt_out_but_not_a_dead_number(web, sqlite_url):
    customer = add_customer()
    other = add_customer(external_id="c-other", phone="+14155550123")
    message = add_message(customer, channel="sms")
    status_callback(web, message.id, "failed", error_code="21610")
    dead = add_message(other, channel="sms")
    status_callback(web, dead.id, "failed", sid="SM9", error_code="30005", to="+14155550123")
    inbound(web, "START")
    inbound(web, "START", sid="SMother", sender="+14155550123")
    assert [(s.address, s.reason) for s in table(Suppression)] == [("+14155550123", "unknown_number")]
    assert sms_consent(customer.id)
    # The history keeps what the list no longer holds: who put the number there and who lifted it.
    assert [(e.address, e.action, e.reason, e.source) for e in table(SuppressionEvent)] == [
        (PHONE, "added", "unsubscribed", "webhook:twilio"),
        ("+14155550123", "added", "unknown_number", "webhook:twilio"),
        (PHONE, "lifted", "unsubscribed", "sms_keyword")]


@pytest.mark.parametrize("body", ["HELP", " help", "Info "])
def test_help_keywords_answer_with_help_text(web, sqlite_url, body, monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.setenv("ORCH_SENDGRID_FROM_NAME", "Some Sender Name")  # a provider setting: not used
    get_settings.cache_clear()
    add_customer()
    response = inbound(web, body)
    assert "<Message>Example Co: texts about your account" in response.text  # brand.yaml's name
    assert "Reply STOP to opt out" in response.text and "+1 415 555 0100" in response.text
    assert "- Example Co</Message>" in response.text and "Some Sender Name" not in response.text
    assert table(CustomerFeedback) == [] and table(ConsentEvent) == []


@pytest.mark.parametrize("body", ["My order never arrived", "Please don't stop the service",
                                  "my payments stopped working", "cancel my order", "do not stop texting me"])
def test_any_other_reply_is_kept_and_opens_a_phone_task_once(web, sqlite_url, body):
    customer = add_customer()
    first = inbound(web, body, sid="SMreply")
    assert first.status_code == 200 and "<Message>" not in first.text
    inbound(web, body, sid="SMreply")  # Twilio retried the webhook
    [feedback] = table(CustomerFeedback)
    assert (feedback.customer_id, feedback.channel, feedback.body) == (customer.id, "sms", body)
    [task] = table(PhoneTask)
    assert (task.customer_id, task.topic, task.reason) == (customer.id, "support", "customer replied by SMS")
    assert body in task.script and task.due_at > task.created_at
    assert table(ConsentEvent) == []  # a sentence containing "stop" or "cancel" is not an opt-out


@pytest.mark.parametrize("body", ["stop please", "STOP STOP", '"STOP"', "Please stop texting me!",
                                  "opt out", "Opt-out.", "revoke my consent", "Don't text me anymore",
                                  "unsubscribe me", "remove me from your list", "no more texts please"])
def test_an_opt_out_in_the_customers_own_words_counts_is_confirmed_and_kept(web, sqlite_url, body):
    customer = add_customer()
    response = inbound(web, body)
    assert response.status_code == 200
    assert not sms_consent(customer.id) and not sms_consent(customer.id, "security")
    assert [(s.address, s.reason) for s in table(Suppression)] == [(PHONE, "unsubscribed")]
    # The provider only confirms its own keywords: we confirm this one, in the brand's words.
    assert "<Message>Example Co: you are unsubscribed" in response.text and "Reply START" in response.text
    [feedback] = table(CustomerFeedback)  # the customer's words are kept, without a call to them
    assert (feedback.customer_id, feedback.body, feedback.source) == (customer.id, body, "sms_reply:opt_out")
    assert table(PhoneTask) == []


def test_the_customer_gets_one_confirmation(web, sqlite_url):
    add_customer()
    assert "<Message>" in inbound(web, "please stop texting me", sid="SM1").text
    assert "<Message>" not in inbound(web, "STOP TEXTING ME!!", sid="SM2").text  # already stopped
    assert "<Message>" not in inbound(web, "stop", sid="SM3").text  # the provider answers keywords
    inbound(web, "START", sid="SM4")
    assert "<Message>" not in inbound(web, "STOP", sid="SM5").text  # confirmed by the provider
    assert "<Message>" not in inbound(web, "stop texting me", sid="SM6").text  # already stopped


def test_start_undoes_the_stop_the_number_sent_and_nothing_recorded_elsewhere(web, sqlite_url):
    """Two customers share a number: one said no to texts in an import, the other no to offers in
    the preference centre. STOP then START from the number leave both of those standing."""
    imported = add_customer()
    chose = add_customer(external_id="c-partner", email="partner@example.com")
    with session_scope() as session:
        record_consent(session, imported.id, "sms", "*", "opted_out", "import")
        record_consent(session, chose.id, "*", "marketing", "opted_out", "preference_centre")
    inbound(web, "STOP", sid="SM1")
    assert not sms_consent(chose.id, "security")
    inbound(web, "START", sid="SM2")
    assert not sms_consent(imported.id, "security") and not sms_consent(imported.id, "marketing")
    assert sms_consent(chose.id, "security") and not sms_consent(chose.id, "marketing")
    assert table(Suppression) == []
    with session_scope() as session:  # nothing lingers for the partner: as before the STOP
        assert current_consent(session, [chose.id]) == {(chose.id, "*", "marketing"): "opted_out"}


def test_a_reply_from_an_unknown_number_is_kept_as_a_support_note(web, sqlite_url):
    inbound(web, "who is this?", sender="+14155550111")
    [feedback] = table(CustomerFeedback)
    assert feedback.customer_id is None and feedback.body == "who is this?"
    assert feedback.source == "sms_reply:unknown_number"


def test_inbound_messages_must_be_signed(web, sqlite_url):
    customer = add_customer()
    params = {"MessageSid": twilio_sid("SMx"), "From": PHONE, "Body": "STOP",
              "AccountSid": TWILIO_ACCOUNT_SID}
    forged = {"X-Twilio-Signature": "AAAA"}
    response = web.client.post("/webhooks/twilio/inbound", data=params, headers=forged)
    assert response.status_code == 403
    assert sms_consent(customer.id)


def test_without_an_auth_token_nothing_is_accepted(web, sqlite_url, monkeypatch):
    from orchestrator.settings import get_settings

    customer = add_customer()
    monkeypatch.delenv("ORCH_TWILIO_AUTH_TOKEN")
    get_settings.cache_clear()
    assert inbound(web, "STOP").status_code == 503
    assert sms_consent(customer.id)


def test_a_custom_opt_out_keyword_recognised_by_twilio_opts_out(web, sqlite_url):
    customer = add_customer()
    params = {"MessageSid": twilio_sid("SMc"), "From": PHONE, "Body": "leave me alone", "OptOutType": "STOP",
              "AccountSid": TWILIO_ACCOUNT_SID}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/inbound", params)
    assert web.client.post("/webhooks/twilio/inbound", data=params, headers=headers).status_code == 200
    assert not sms_consent(customer.id)
    assert table(CustomerFeedback) == []


def test_the_preference_centre_says_how_to_undo_a_stop(web, sqlite_url):
    from orchestrator.links import preferences_url

    customer = add_customer()
    page_path = "/" + preferences_url(customer.id).split("/", 3)[3]
    assert "reply START" not in web.client.get(page_path).text
    inbound(web, "STOP")
    assert "reply START from your phone" in web.client.get(page_path).text


def test_a_reply_to_a_shared_number_goes_to_the_customer_we_texted_last(web, db_url):
    from datetime import timedelta

    from orchestrator.models import utcnow

    parent = add_customer()
    child = add_customer(external_id="c-child", name="Kid")
    add_message(child, channel="sms", dedupe_key="a")  # sent just now
    earlier = add_message(parent, channel="sms", dedupe_key="b")  # a newer row, sent a day ago
    with session_scope() as session:
        session.get(Message, earlier.id).sent_at = utcnow() - timedelta(days=1)
    inbound(web, "Wrong person, please call my mum")
    [feedback] = table(CustomerFeedback)
    assert feedback.customer_id == child.id
    assert [t.customer_id for t in table(PhoneTask)] == [child.id]


def test_a_signed_parameter_set_reshaped_into_another_is_refused(web, sqlite_url):
    """Twilio signs keys and values joined without separators: MessageSid=SM...+NumMedia=0 signs
    like MessageSid=SM...NumMedia0, a new message id that would slip past the replay guard."""
    add_customer()
    path = "/webhooks/twilio/inbound"
    genuine = {"AccountSid": TWILIO_ACCOUNT_SID, "Body": "the app keeps crashing", "From": PHONE,
               "MessageSid": twilio_sid("reshaped"), "NumMedia": "0"}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, genuine)
    assert web.client.post(path, data=genuine, headers=headers).status_code == 200
    reshaped = {k: v for k, v in genuine.items() if k != "NumMedia"} | {
        "MessageSid": genuine["MessageSid"] + "NumMedia0"}
    assert twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, reshaped) == headers  # same signature
    response = web.client.post(path, data=reshaped, headers=headers)
    assert response.status_code == 403 and "MessageSid is not a Twilio id" in response.text
    assert len(table(CustomerFeedback)) == 1 and len(table(PhoneTask)) == 1


@pytest.mark.parametrize("field, value", [("AccountSid", "AC" + "1" * 31), ("SmsSid", "sm" + "1" * 32),
                                          ("MessagingServiceSid", "MG" + "g" * 32)])
def test_every_id_must_be_well_formed(web, sqlite_url, field, value):
    customer = add_customer()
    path = "/webhooks/twilio/inbound"
    params = {"AccountSid": TWILIO_ACCOUNT_SID, "Body": "STOP", "From": PHONE,
              "MessageSid": twilio_sid(field), field: value}
    response = web.client.post(path, data=params, headers=twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path,
                                                                             params))
    assert response.status_code == 403 and field in response.text
    assert sms_consent(customer.id) and table(Suppression) == []


def test_another_accounts_request_is_refused_once_the_account_is_known(web, sqlite_url, monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.setenv("ORCH_TWILIO_ACCOUNT_SID", "AC" + "9" * 32)
    get_settings.cache_clear()
    assert inbound(web, "STOP").status_code == 403  # signed with our token, for another account
    assert table(Suppression) == []


def test_a_json_body_is_accepted_only_with_its_sha256_in_the_signed_url(web, sqlite_url):
    import hashlib
    import json

    customer = add_customer()
    body = json.dumps({"AccountSid": TWILIO_ACCOUNT_SID, "Body": "STOP", "From": PHONE,
                       "MessageSid": twilio_sid("json")})
    digest = hashlib.sha256(body.encode()).hexdigest()
    json_headers = {"Content-Type": "application/json"}

    def post(query: str, content: str) -> int:
        path = "/webhooks/twilio/inbound" + query
        headers = json_headers | twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + path, {})
        return web.client.post(path, content=content, headers=headers).status_code

    assert post("", body) == 403  # the signature would cover the URL only
    assert post(f"?bodySHA256={digest}", body.replace("STOP", "HELP")) == 403  # not the body signed
    assert sms_consent(customer.id)
    assert post(f"?bodySHA256={digest}", body) == 200
    assert not sms_consent(customer.id)
