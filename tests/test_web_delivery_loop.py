"""The whole loop: a message goes out through a real adapter to a fake provider, and the
provider's signed delivery report (and the customer's one-click unsubscribe) come back in."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from channels.base import OutboundMessage
from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from orchestrator.consent import consent_allows, current_consent
from orchestrator.db import session_scope
from orchestrator.links import unsubscribe_url
from orchestrator.models import Message, utcnow
from tests.support.fakes.sendgrid import FakeSendGrid
from tests.support.fakes.twilio import FakeTwilio
from tests.support.signing import twilio_headers
from tests.support.web import PUBLIC_BASE_URL, TWILIO_TOKEN, add_customer, add_message, reload, web_fixture  # noqa: F401


def mark_sent(message: Message, provider: str, provider_message_id: str) -> None:
    """What dispatch records when the provider accepts a message."""
    with session_scope() as session:
        row = session.get(Message, message.id)
        row.status, row.provider, row.sent_at = "sent", provider, utcnow()
        row.provider_message_id = provider_message_id
        session.add(row)


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_an_email_sent_through_sendgrid_is_delivered_and_unsubscribed_from(web, db_url):
    ada = add_customer()
    message = add_message(ada, status="sending")
    with FakeSendGrid() as fake:
        adapter = SendGridEmailAdapter(api_key=fake.api_key, host=fake.url, concurrency=1)
        [result] = adapter.send([OutboundMessage(
            message_id=message.id, channel="email", to=ada.email, subject="Spring sale", body="Hello Ada",
            topic="marketing", marketing=True, customer_id=ada.id,
            unsubscribe_url=unsubscribe_url(ada.id, "marketing", "email"))])
        adapter.close()
        [sent] = fake.requests
    assert result.ok
    mark_sent(message, "sendgrid", result.provider_message_id)

    personalization = sent.data["personalizations"][0]
    custom_args = {**sent.data.get("custom_args", {}), **personalization.get("custom_args", {})}
    event = {"email": personalization["to"][0]["email"], "timestamp": int(time.time()), "event": "delivered",
             "sg_event_id": "evt-delivered-1", "sg_message_id": f"{result.provider_message_id}.filter0001",
             **custom_args}
    body, headers = web.signer.request([event])
    response = web.client.post("/webhooks/sendgrid/events", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["unmatched"] == 0
    row = reload(Message, message.id)
    assert row.status == "delivered" and row.delivered_at is not None

    # The mail client's one-click unsubscribe, from the List-Unsubscribe header the adapter set.
    link = sent.data["headers"]["List-Unsubscribe"].strip("<>")
    assert link.startswith(PUBLIC_BASE_URL + "/unsubscribe/")
    assert web.client.post(path_and_query(link), data={"List-Unsubscribe": "One-Click"}).status_code == 200
    with session_scope() as session:
        consent = current_consent(session, [ada.id])
    assert not consent_allows(consent, ada.id, "email", "marketing")


def test_an_sms_sent_through_twilio_reports_its_delivery_to_the_status_callback(web, db_url):
    ada = add_customer()
    message = add_message(ada, channel="sms", status="sending")
    with FakeTwilio(auth_token=TWILIO_TOKEN) as fake:
        adapter = TwilioSmsAdapter(account_sid=fake.account_sid, auth_token=TWILIO_TOKEN,
                                   from_number="+15005550006", base_url=fake.url,
                                   public_base_url=PUBLIC_BASE_URL, concurrency=1)
        [result] = adapter.send([OutboundMessage(message_id=message.id, channel="sms", to=ada.phone,
                                                 body="Your order shipped", customer_id=ada.id)])
        adapter.close()
        [sent] = fake.requests
    assert result.ok
    mark_sent(message, "twilio", result.provider_message_id)

    callback = sent.data["StatusCallback"]
    params = {"MessageSid": result.provider_message_id, "MessageStatus": "delivered", "To": ada.phone,
              "AccountSid": fake.account_sid}
    response = web.client.post(path_and_query(callback), data=params,
                               headers=twilio_headers(TWILIO_TOKEN, callback, params))
    assert response.status_code == 200 and response.json()["unmatched"] == 0
    assert reload(Message, message.id).status == "delivered"
