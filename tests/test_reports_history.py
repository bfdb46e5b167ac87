"""A report equals the history that happened: a campaign and an incident run through the real
flows against the fake providers, then signed SendGrid events, Twilio callbacks, inbound SMS and
a one-click unsubscribe come back through the web app (duplicates, events out of order, machine
opens included), and every funnel count and rate is exactly what that history says."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from channels.settings import current
from channels.twilio.settings import TwilioSettings
from flows.campaign import campaign
from flows.outage import outage_notice
from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.models import PhoneTask
from orchestrator.phone_tasks import complete_task
from orchestrator.reports import ReportSlice, build_report
from tests.support.flow_world import (
    MARKETING_FACTS,
    add_customer,
    by_customer,
    ledger,
    use_fake_providers,
)
from tests.support.signing import TWILIO_ACCOUNT_SID, sendgrid_event, twilio_headers
from tests.support.web import PUBLIC_BASE_URL, web_fixture  # noqa: F401
from tests.support.zones import NIGHT

INCIDENT = {"incident_id": "inc-9", "severity": "major", "title": "Card payments are failing",
            "summary": "We are rolling out a fix", "affected": {"region": "eu"}, "chunk_size": 3}


class Webhooks:
    """Signed provider requests into the web app."""

    def __init__(self, web):
        self.web = web

    def sendgrid(self, events: list[dict]) -> dict:
        body, headers = self.web.signer.request(events)
        response = self.web.client.post("/webhooks/sendgrid/events", content=body, headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    def _twilio(self, path: str, params: dict[str, str]):
        token = current(TwilioSettings).auth_token.get_secret_value()
        response = self.web.client.post(path, data=params,
                                        headers=twilio_headers(token, PUBLIC_BASE_URL + path, params))
        assert response.status_code == 200, response.text
        return response

    def twilio_status(self, message, status: str, error_code: str | None = None) -> dict:
        params = {"MessageSid": message.provider_message_id, "MessageStatus": status,
                  "AccountSid": TWILIO_ACCOUNT_SID}
        if error_code:
            params["ErrorCode"] = error_code
        return self._twilio(f"/webhooks/twilio/status?message_id={message.id}", params).json()

    def inbound_sms(self, sender: str, body: str, n: int) -> None:
        self._twilio("/webhooks/twilio/inbound", {"MessageSid": f"SM{n:032x}", "From": sender, "Body": body,
                                                  "To": "+15557654321", "AccountSid": TWILIO_ACCOUNT_SID})


def event(kind: str, message, n: int = 0, **extra) -> dict:
    return sendgrid_event(kind, message.id, event_id=f"evt-{kind}-{message.id}-{n}", **extra)


def one_click_link(sendgrid, address: str) -> str:
    """The List-Unsubscribe link the fake SendGrid received for ``address``."""
    [request] = sendgrid.requests_to(address)
    for personalization in request.data["personalizations"]:
        if personalization["to"][0]["email"] == address:
            headers = personalization.get("headers") or request.data.get("headers")
            return headers["List-Unsubscribe"].strip("<>")
    raise AssertionError(f"no personalization for {address}")


def rates(report) -> dict[str, tuple[int, int]]:
    return {name: (r["numerator"], r["denominator"]) for name, r in report["rates"].items()}


@pytest.fixture
def world(db_url, web, monkeypatch, fake_sendgrid, fake_twilio):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio)
    return Webhooks(web), fake_sendgrid


def test_reports_equal_the_known_history_of_a_campaign_and_an_incident(prefect_harness, world):
    hooks, sendgrid = world
    e = [add_customer(f"e{i}", email=f"e{i}@example.com", region="eu" if i < 2 else "us") for i in range(9)]
    vip = add_customer("vip", email="vip@example.com", phone="+14155550190", tier="premium", region="eu")
    hermit = add_customer("hermit", email="hermit@example.com", do_not_contact=True)
    s = [add_customer(f"s{i}", phone=f"+1415555012{i}", region="eu" if i == 0 else "us") for i in range(4)]
    owl = add_customer("owl", phone="+14155550139", hour=NIGHT)

    state = campaign(name="spring", segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=4,
                     return_state=True)
    assert state.is_completed()
    spring = by_customer(ledger("campaign:spring"))
    mail = {i: spring[cid] for i, cid in enumerate(e)} | {"vip": spring[vip]}
    text = {i: spring[cid] for i, cid in enumerate(s)}
    assert {m.channel for m in mail.values()} == {"email"} and {m.channel for m in text.values()} == {"sms"}
    assert spring[owl].status == "deferred" and spring[hermit].status == "suppressed"

    # SendGrid reports, in three batches: e1's open overtakes its delivery and its processing,
    # e3's click comes twice in one batch, and the first batch is delivered again (a retry).
    first = [event("processed", m) for k, m in mail.items() if k != 1]
    first += [event("delivered", mail[k]) for k in (0, 2, 3, 4, 5, 6, "vip")]
    first += [event("open", mail[1]), event("open", mail[0]), event("open", mail[0], 1),
              event("click", mail[0]), event("open", mail[2], sg_machine_open=True),
              event("open", mail[3], sg_machine_open=True), event("open", mail[3], 1),
              event("click", mail[3]), event("click", mail[3]),
              event("spamreport", mail[4]), event("unsubscribe", mail[5]),
              event("bounce", mail[7], type="bounce", reason="550 5.1.1 unknown user"),
              event("dropped", mail[8], reason="Bounced Address")]
    assert hooks.sendgrid(first)["duplicates"] == 1
    assert hooks.sendgrid(first)["duplicates"] == len(first)
    hooks.sendgrid([event("delivered", mail[1]), event("processed", mail[1])])

    # e6 unsubscribes with the one-click link of the email it received.
    link = urlsplit(one_click_link(sendgrid, "e6@example.com"))
    response = hooks.web.client.post(link.path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert hooks.web.client.post(link.path, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    # Twilio: s1's "delivered" comes before its "sent", s2 never arrives, s3's delivery is repeated.
    hooks.twilio_status(text[0], "sent")
    hooks.twilio_status(text[0], "delivered")
    hooks.twilio_status(text[1], "delivered")
    hooks.twilio_status(text[1], "sent")
    hooks.twilio_status(text[2], "undelivered", error_code="30003")
    hooks.twilio_status(text[3], "delivered")
    assert hooks.twilio_status(text[3], "delivered")["duplicates"] == 1
    # s1 answers; s3 says STOP (an unsubscribe from the text, not a reply); a stranger writes in.
    hooks.inbound_sms("+14155550121", "Thanks, see you at the sale", 1)
    hooks.inbound_sms("+14155550123", "STOP", 2)
    hooks.inbound_sms("+14155550188", "who is this?", 3)

    # The incident: investigating, then resolved, for the customers in region eu.
    assert outage_notice(**INCIDENT, status="investigating", return_state=True).is_completed()
    with session_scope() as session:  # the agent calls the premium customer before the fix is out
        [call] = session.exec(select(PhoneTask).where(PhoneTask.message_id.is_not(None))).all()
        complete_task(session, call.id, "explained the outage")
    resolved_run = outage_notice(**{**INCIDENT, "summary": "Fixed"}, status="resolved", return_state=True)
    assert resolved_run.is_completed()
    notices = ledger("incident:inc-9:")
    first_update = by_customer(ledger("incident:inc-9:investigating"), "email")
    resolved = by_customer(ledger("incident:inc-9:resolved"), "email")
    hooks.sendgrid([event("delivered", first_update[e[0]]), event("open", first_update[e[0]]),
                    event("delivered", first_update[e[1]]), event("delivered", first_update[vip]),
                    event("delivered", resolved[e[0]]),
                    event("open", resolved[e[1]], sg_machine_open=True)])
    [notice_sms] = [m for m in notices.values() if m.channel == "sms" and "investigating" in m.dedupe_key]
    hooks.twilio_status(notice_sms, "delivered")
    hooks.inbound_sms("+14155550120", "Is it fixed now?", 4)  # s0 answers the latest text it got

    with session_scope() as session:
        report = build_report(session, ReportSlice(campaign="spring"))
        incident = build_report(session, ReportSlice(incident="inc-9"))

    funnel = {k: v for k, v in report["funnel"].items() if not k.endswith("_by_reason")}
    assert funnel == {
        "audience": 16, "messages": 16, "planned": 15, "pending": 0, "deferred": 1, "suppressed": 1,
        "cancelled": 0, "sent": 14, "delivered": 11, "opened": 3, "machine_opened": 2, "clicked": 2,
        "bounced": 1, "dropped": 1, "spam_reports": 1, "unsubscribed": 3, "failed": 2, "reconcile": 0,
        "replies": 1, "phone_tasks_opened": 0, "phone_tasks_done_within_sla": 0}
    assert report["funnel"]["suppressed_by_reason"] == {"do_not_contact": 1}
    assert "quiet_hours:sms" in report["funnel"]["deferred_by_reason"]
    assert rates(report) == {"delivery_rate": (11, 14), "open_rate": (3, 11), "click_rate": (2, 11),
                             "bounce_rate": (1, 14), "spam_report_rate": (1, 11), "unsubscribe_rate": (3, 11),
                             "reply_rate": (1, 11)}
    assert report["rates"]["open_rate"]["value"] == round(3 / 11, 6)
    assert report["rates"]["delivery_rate"]["value"] == round(11 / 14, 6)
    channels = {r["value"]: r["counts"] for r in report["breakdown"]["channel"]}
    assert {ch: (c["messages"], c["sent"], c["delivered"], c["opened"], c["failed"])
            for ch, c in channels.items()} == {"email": (11, 10, 8, 3, 1), "sms": (5, 4, 3, 0, 1)}
    assert report["timing"]["send_to_delivered"]["measured"] == 11
    assert 0 <= report["timing"]["send_to_delivered"]["median_seconds"] <= \
        report["timing"]["send_to_delivered"]["p95_seconds"]

    # Investigating: e0, e1, vip by email, s0 by SMS, a call for vip; resolved: the same four.
    funnel = incident["funnel"]
    assert (funnel["audience"], funnel["messages"], funnel["sent"]) == (4, 9, 9)
    # Delivered: 3 + 1 reported, the SMS notice, and e1's all-clear (a proxy fetched it from the inbox).
    assert (funnel["delivered"], funnel["opened"], funnel["machine_opened"]) == (6, 1, 1)
    assert funnel["replies"] == 1
    assert (funnel["phone_tasks_opened"], funnel["phone_tasks_done_within_sla"]) == (1, 1)
    assert {r["value"]: r["counts"]["messages"] for r in incident["breakdown"]["template"]} == {
        "outage_notice": 5, "outage_resolved": 4}

    # The same report from the command line.
    result = CliRunner().invoke(app, ["report", "campaign", "spring", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["funnel"]["opened"] == 3
