"""WhatsApp refusals that come late, in a Twilio status callback after the send was accepted
(63016 outside the window, 63003 not a WhatsApp number), end like refusals at send time: the
failed WhatsApp row says why, the policy falls back to the next channel of the route exactly once
(however often, and however concurrently, Twilio reports the failure), with consent, caps and quiet
hours as usual; after a 63003 the next message goes straight to the next channel.

Real parts: the WhatsApp plug-in and the Twilio SDK against the fake Twilio, which posts the
signed status callbacks to the web app."""

from __future__ import annotations

import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import yaml
from sqlmodel import select

from channels.twilio.webhook import status_event
from orchestrator.consent import record_consent
from orchestrator.contact_points import record_inbound, set_contact_point
from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.inbound.delivery_events import apply_provider_events
from orchestrator.models import Message, MessageStatus, Suppression, utcnow
from orchestrator.policy import Intent, reserve_chunk
from orchestrator.policy.explain import explain_customer
from orchestrator.settings import get_settings
from tests.support.fakes.twilio import FakeTwilio, StatusCallback
from tests.support.flow_world import add_customer, use_fake_providers
from tests.support.web import TWILIO_TOKEN, web_fixture  # noqa: F401

ROUTE = ["whatsapp", "sms", "email"]
NUMBER = "+14155550101"
WHATSAPP = f"whatsapp:{NUMBER}"
FACTS = {"incident_title": "Card payments are failing", "affected": "card payments in the EU",
         "actions": "rolling back the release", "next_update": "14:00 UTC",
         "status_page_url": "https://status.example.com/inc-7"}


@pytest.fixture
def twilio(db_url, web, tmp_path, monkeypatch, fake_sendgrid, fake_twilio: FakeTwilio) -> FakeTwilio:
    """Outages routed [whatsapp, sms, email] with fallback and one SMS a day at most; the fake
    Twilio signs its status callbacks with the token the web app checks."""
    policy = {
        "topics": {"outage": {"priority": 90, "channels": ROUTE, "tone": "empathetic",
                              "when_capped": "fallback"}},
        "caps": [{"name": "sms-1d", "max": 1, "window": "1d", "channel": "sms", "topics": "all"}],
        "quiet_hours": {"sms": {"start": "21:00", "end": "08:00"}},
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    fake_twilio.auth_token = TWILIO_TOKEN
    fake_twilio.send_status_callbacks = True
    fake_twilio.whatsapp_users = {NUMBER}
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio)
    monkeypatch.setenv("ORCH_POLICY_FILE", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("ORCH_TWILIO_WHATSAPP_FROM", "whatsapp:+14155238886")
    monkeypatch.setenv("ORCH_TWILIO_WHATSAPP_CONTENT_FILE", str(tmp_path / "no-templates.yaml"))
    get_settings.cache_clear()
    return fake_twilio


def whatsapp_customer(twilio: FakeTwilio) -> int:
    """A customer who opted in to WhatsApp and wrote an hour ago (the window is open as far as we
    and the fake know), with a phone number and an email address to fall back to."""
    cid = add_customer("ada", phone=NUMBER, email="ada@example.com")
    wrote = utcnow() - timedelta(hours=1)
    with session_scope() as session:
        set_contact_point(session, cid, "whatsapp", WHATSAPP, "import")
        record_consent(session, cid, "whatsapp", "*", "opted_in", "import")
    with session_scope() as session:
        record_inbound(session, "whatsapp", WHATSAPP, wrote)
    twilio.customer_wrote(NUMBER, wrote)
    return cid


def notify(cid: int, key: str = "incident:inc-7") -> None:
    """Reserves and sends an outage notice (what the outage flow does, without Prefect)."""
    reserve_chunk([Intent(customer_id=cid, topic="outage", template="outage_notice", dedupe_key=key,
                          data=FACTS)])
    dispatch_due()


def post(web, callback: StatusCallback):
    url = urlsplit(callback.url)
    return web.client.post(f"{url.path}?{url.query}", data=callback.params, headers=callback.headers)


def deliver(web, callbacks: list[StatusCallback]) -> list[dict]:
    answers = [post(web, cb) for cb in callbacks]
    assert [a.status_code for a in answers] == [200] * len(answers)
    return [a.json() for a in answers]


def rows(cid: int) -> list[Message]:
    with session_scope() as session:
        return list(session.exec(select(Message).where(Message.customer_id == cid).order_by(Message.id)))


def sent_to(twilio: FakeTwilio, to: str) -> int:
    return sum(1 for r in twilio.requests if r.data and r.data.get("To") == to)


def test_a_late_63016_fails_the_whatsapp_row_and_falls_back_to_sms_once(twilio, web):
    cid = whatsapp_customer(twilio)
    twilio.late_errors[WHATSAPP] = 63016  # Twilio accepts it, then finds the window closed
    notify(cid)
    [whatsapp] = rows(cid)
    assert (whatsapp.channel, whatsapp.status) == ("whatsapp", MessageStatus.sent)

    sent_cb, failed_cb = twilio.take_status_callbacks()
    assert failed_cb.params["MessageStatus"] == "failed" and failed_cb.params["ErrorCode"] == "63016"
    _, failed = deliver(web, [sent_cb, failed_cb])
    assert (failed["late_failures"], failed["fallbacks"], failed["suppressed"]) == (1, 1, 0)

    whatsapp, fallback = rows(cid)
    assert whatsapp.status == MessageStatus.failed
    assert whatsapp.reason_codes[-1] == "permanent:outside_window"
    assert "63016" in (whatsapp.last_error or "")
    assert (fallback.channel, fallback.status) == ("sms", MessageStatus.planned)
    assert fallback.dedupe_key == "incident:inc-7>fallback:whatsapp"
    assert fallback.reason_codes[0] == "fallback:whatsapp->sms"
    assert "permanent:outside_window" in fallback.reason_text

    # The same report again, and Twilio's "undelivered" for the same message: no second fallback.
    again = deliver(web, [failed_cb, _with(failed_cb, twilio, MessageStatus="undelivered")])
    assert [a["fallbacks"] for a in again] == [0, 0] and again[0]["duplicates"] == 1
    assert len(rows(cid)) == 2

    dispatch_due()  # the due-sweeper's turn
    whatsapp, fallback = rows(cid)
    assert fallback.status == MessageStatus.sent
    assert sent_to(twilio, NUMBER) == 1 and sent_to(twilio, WHATSAPP) == 1

    # explain shows both rows and why.
    explained = {e.message_id: e for e in _explain(cid)}
    assert explained[whatsapp.id].status == "failed"
    assert "permanent:outside_window" in explained[whatsapp.id].reason_codes
    assert explained[fallback.id].reason_codes[0] == "fallback:whatsapp->sms"


def test_a_late_63003_suppresses_the_whatsapp_address_so_the_next_message_skips_it(twilio, web):
    cid = whatsapp_customer(twilio)
    twilio.late_errors[WHATSAPP] = 63003
    notify(cid)
    [report] = [r for r in deliver(web, twilio.take_status_callbacks()) if r["late_failures"]]
    assert (report["fallbacks"], report["suppressed"]) == (1, 1)
    whatsapp, fallback = rows(cid)
    assert whatsapp.reason_codes[-1] == "permanent:invalid_address"
    assert fallback.channel == "sms"
    with session_scope() as session:
        [suppression] = session.exec(select(Suppression)).all()
    assert (suppression.channel, suppression.address, suppression.reason) == (
        "whatsapp", WHATSAPP, "not_on_whatsapp")

    # The next outage goes straight to the next channel: no WhatsApp attempt at all.
    dispatch_due()
    before = sent_to(twilio, WHATSAPP)
    notify(cid, key="incident:inc-8")
    [nxt] = [m for m in rows(cid) if m.dedupe_key == "incident:inc-8"]
    # WhatsApp is suppressed; the SMS fallback went out today, so the sms-1d cap sends it by email.
    assert (nxt.channel, nxt.status) == ("email", MessageStatus.sent)
    assert nxt.reason_codes[:3] == ["suppressed:not_on_whatsapp", "cap:sms-1d", "fallback:whatsapp->email"]
    assert sent_to(twilio, WHATSAPP) == before



@pytest.mark.parametrize("when", ["at_send", "late"])
def test_not_a_whatsapp_number_is_suppressed_for_one_reason_at_send_time_and_late(twilio, web, when):
    """Twilio's 63003 means the same whether it refuses the send or reports it in a status callback:
    the row fails with ``permanent:invalid_address``, the address is suppressed as ``not_on_whatsapp``
    and the next message skips WhatsApp saying so."""
    cid = whatsapp_customer(twilio)
    if when == "late":
        twilio.late_errors[WHATSAPP] = 63003
    else:
        twilio.whatsapp_users = set()  # Twilio refuses the send at once
    notify(cid)
    deliver(web, twilio.take_status_callbacks())
    whatsapp = rows(cid)[0]
    assert (whatsapp.channel, whatsapp.status) == ("whatsapp", MessageStatus.failed)
    assert whatsapp.reason_codes[-1] == "permanent:invalid_address"
    with session_scope() as session:
        [suppression] = session.exec(select(Suppression)).all()
    assert (suppression.channel, suppression.address, suppression.reason) == (
        "whatsapp", WHATSAPP, "not_on_whatsapp")

    notify(cid, key="incident:inc-8")
    [nxt] = [m for m in rows(cid) if m.dedupe_key == "incident:inc-8"]
    assert nxt.channel != "whatsapp" and nxt.reason_codes[0] == "suppressed:not_on_whatsapp"


def test_the_fallback_keeps_to_consent(twilio, web):
    cid = whatsapp_customer(twilio)
    twilio.late_errors[WHATSAPP] = 63016
    with session_scope() as session:  # no SMS for this customer: the fallback goes by email
        record_consent(session, cid, "sms", "*", "opted_out", "preference_centre")
    notify(cid)
    deliver(web, twilio.take_status_callbacks())
    _, fallback = rows(cid)
    assert fallback.channel == "email"
    assert fallback.reason_codes == ["fallback:whatsapp->email", "consent:opted_out", "fallback:sms->email",
                                     "route:email"]


def test_a_fallback_at_night_waits_for_the_morning(twilio, web):
    cid = whatsapp_customer(twilio)
    twilio.late_errors[WHATSAPP] = 63016
    notify(cid)
    _, failed_cb = twilio.take_status_callbacks()
    night = utcnow() + timedelta(hours=12)  # the customer lives where it is 13:00 now
    event = status_event(failed_cb.params, urlsplit(failed_cb.url).query.split("=", 1)[1])
    with session_scope() as session:
        report = apply_provider_events(session, [event], now=night)
    assert report.fallbacks == 1
    _, fallback = rows(cid)
    assert fallback.status == MessageStatus.deferred and fallback.send_at > night
    assert any(code.startswith("quiet_hours:") for code in fallback.reason_codes)


def test_concurrent_reports_of_one_late_failure_make_one_fallback(twilio, web):
    cid = whatsapp_customer(twilio)
    twilio.late_errors[WHATSAPP] = 63016
    notify(cid)
    _, failed_cb = twilio.take_status_callbacks()
    message_id = urlsplit(failed_cb.url).query.split("=", 1)[1]
    # Twilio retries a callback it thinks was lost, and reports "undelivered" as well.
    events = [status_event(failed_cb.params, message_id) for _ in range(3)] + [
        status_event({**failed_cb.params, "MessageStatus": "undelivered"}, message_id) for _ in range(3)]
    barrier = threading.Barrier(len(events))
    reports, errors = [], []

    def apply(event):
        try:
            barrier.wait()
            with session_scope() as session:
                reports.append(apply_provider_events(session, [event]))
        except Exception as exc:  # noqa: BLE001 - the test asserts there were none
            errors.append(exc)

    threads = [threading.Thread(target=apply, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(r.fallbacks for r in reports) == 1
    whatsapp, fallback = rows(cid)
    assert whatsapp.reason_codes.count("permanent:outside_window") == 1
    assert fallback.dedupe_key == "incident:inc-7>fallback:whatsapp"
    dispatch_due()
    assert sent_to(twilio, NUMBER) == 1


def _with(callback: StatusCallback, twilio: FakeTwilio, **changes: str) -> StatusCallback:
    from tests.support.signing import twilio_headers

    params = {**callback.params, **changes}
    return StatusCallback(callback.url, params, twilio_headers(twilio.auth_token, callback.url, params))


def _explain(cid: int):
    with session_scope() as session:
        return explain_customer(session, cid)


@pytest.mark.parametrize(("code", "reason", "suppress"), [
    (63016, "outside_window", None), (63003, "invalid_address", "not_on_whatsapp"),
    (63014, "blocked", None), (63049, "blocked", None), (30008, None, None)])
def test_one_table_says_what_a_twilio_code_means_at_send_time_and_late(code, reason, suppress):
    from channels.twilio.errors import known_error

    event = status_event({"MessageSid": "SM" + "a" * 32, "MessageStatus": "undelivered", "To": WHATSAPP,
                          "ErrorCode": str(code)}, "7")
    assert event.channel == "whatsapp" and event.message_id == 7
    assert (event.permanent, event.suppress_reason) == (reason, suppress)
    known = known_error(code)
    assert (known.reason if known else None) == reason
