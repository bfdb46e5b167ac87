"""WhatsApp messages reach us through Twilio's inbound webhook: a customer writing opens the
24-hour window and proves the address; STOP on WhatsApp leaves WhatsApp, not SMS."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.consent import consent_allows, current_consent, record_consent
from orchestrator.contact_points import set_contact_point
from orchestrator.db import session_scope
from orchestrator.models import ContactPoint, CustomerFeedback
from tests.support.signing import TWILIO_ACCOUNT_SID, twilio_headers, twilio_sid
from tests.support.web import PUBLIC_BASE_URL, TWILIO_TOKEN, add_customer, web_fixture  # noqa: F401

NUMBER = "+14155550100"


def inbound(web, body, sid="SMwa1"):
    params = {"MessageSid": twilio_sid(sid), "From": f"whatsapp:{NUMBER}", "To": "whatsapp:+14155238886",
              "Body": body, "AccountSid": TWILIO_ACCOUNT_SID}
    headers = twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/inbound", params)
    return web.client.post("/webhooks/twilio/inbound", data=params, headers=headers)


def whatsapp_customer() -> int:
    customer = add_customer(phone=NUMBER)
    with session_scope() as session:
        set_contact_point(session, customer.id, "whatsapp", f"whatsapp:{NUMBER}", "import")
        record_consent(session, customer.id, "whatsapp", "*", "opted_in", "import")
    return customer.id


def test_a_customer_writing_on_whatsapp_opens_the_window_and_is_heard(web, sqlite_url):
    cid = whatsapp_customer()
    assert inbound(web, "Is the outage over?").status_code == 200
    with session_scope() as session:
        point = session.exec(select(ContactPoint)).one()
        [feedback] = session.exec(select(CustomerFeedback)).all()
    assert point.verified and point.last_inbound_at is not None
    assert (feedback.customer_id, feedback.channel, feedback.body) == (cid, "whatsapp", "Is the outage over?")
    # The same delivery again changes nothing.
    first = point.last_inbound_at
    inbound(web, "Is the outage over?")
    with session_scope() as session:
        assert len(session.exec(select(CustomerFeedback)).all()) == 1
        assert session.exec(select(ContactPoint)).one().last_inbound_at == first


def test_stop_on_whatsapp_leaves_whatsapp_and_keeps_sms(web, sqlite_url):
    cid = whatsapp_customer()
    assert inbound(web, "STOP", sid="SMwa2").status_code == 200
    with session_scope() as session:
        consent = current_consent(session, [cid])
    assert not consent_allows(consent, cid, "whatsapp", "marketing", True)
    assert consent_allows(consent, cid, "sms", "marketing")
