"""A campaign and an outage notice routed [whatsapp, sms, email] end to end: real flows, the WhatsApp
plug-in and the Twilio SDK against the fake Twilio, which applies WhatsApp's rules."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
import yaml

from flows.campaign import campaign
from flows.outage import outage_notice
from orchestrator.consent import record_consent
from orchestrator.contact_points import record_inbound, set_contact_point
from orchestrator.db import session_scope
from orchestrator.models import Customer, MessageStatus, utcnow
from orchestrator.settings import REPO_ROOT, get_settings
from tests.support.flow_world import MARKETING_FACTS, add_customer, ledger, use_fake_providers

OUTAGE_SID = "HX" + "0" * 31 + "1"
ROUTE = ["whatsapp", "sms", "email"]


@pytest.fixture
def world(tmp_path, monkeypatch, fake_sendgrid, fake_twilio):
    """Policy routing both topics [whatsapp, sms, email]; spring_sale gains a WhatsApp variant; the
    outage notice has an approved Content template in English only."""
    policy = {"topics": {
        "outage": {"priority": 90, "channels": ROUTE, "tone": "empathetic", "bypass_caps": True,
                   "when_capped": "fallback"},
        "marketing": {"priority": 10, "channels": ROUTE, "tone": "professional", "when_capped": "fallback"},
    }}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    templates = tmp_path / "templates"
    shutil.copytree(REPO_ROOT / "templates", templates)
    sale = templates / "messages" / "spring_sale"
    meta = yaml.safe_load((sale / "message.yaml").read_text())
    meta["channels"].append("whatsapp")
    (sale / "message.yaml").write_text(yaml.safe_dump(meta))
    (sale / "professional" / "whatsapp.txt").write_text(
        "{{ brand.name }}: {{ data.offer }} until {{ data.ends_on }} with code {{ data.code }}: "
        "{{ data.shop_url }}\nReply STOP to opt out.\n")
    (tmp_path / "whatsapp_content.yaml").write_text(yaml.safe_dump({"outage_notice": {"en": {
        "content_sid": OUTAGE_SID, "variables": {"1": "incident_title", "2": "status_page_url"}}}}))
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio)
    env = {"ORCH_POLICY_FILE": str(tmp_path / "policy.yaml"), "ORCH_TEMPLATES_DIR": str(templates),
           "ORCH_TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886",
           "ORCH_TWILIO_WHATSAPP_CONTENT_FILE": str(tmp_path / "whatsapp_content.yaml")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    fake_twilio.approved_content = {OUTAGE_SID: {"1", "2"}}
    fake_twilio.whatsapp_users = {"+14155550101", "+14155550102", "+14155550104", "+14155550105"}
    return fake_twilio, fake_sendgrid


def customer(external_id: str, number: str, *, whatsapp: bool = True, wrote_hours_ago: float | None = None,
             twilio=None, locale: str = "en") -> int:
    """``wrote_hours_ago``: when our ledger says the customer last wrote; ``twilio``: Twilio knows it too."""
    cid = add_customer(external_id, phone=number, email=f"{external_id}@example.com", region="eu")
    with session_scope() as session:
        session.get(Customer, cid).locale = locale
        if whatsapp:
            set_contact_point(session, cid, "whatsapp", f"whatsapp:{number}", "import")
            record_consent(session, cid, "whatsapp", "*", "opted_in", "import")
    if wrote_hours_ago is not None:
        at = utcnow() - timedelta(hours=wrote_hours_ago)
        with session_scope() as session:
            record_inbound(session, "whatsapp", f"whatsapp:{number}", at)
        if twilio is not None:
            twilio.customer_wrote(number, at)
    return cid


def rows_of(prefix: str, cid: int):
    return sorted((m for m in ledger(prefix).values() if m.customer_id == cid), key=lambda m: m.id)


def sms_to(twilio, number: str) -> int:
    return sum(1 for r in twilio.requests if r.data and r.data.get("To") == number)


def whatsapp_to(twilio, number: str) -> list[dict]:
    return [r.data for r in twilio.requests if r.data and r.data.get("To") == f"whatsapp:{number}"]


def test_a_campaign_on_whatsapp_falls_back_once_where_whatsapp_refuses(prefect_harness, sqlite_url, world):
    twilio, _sendgrid = world
    talking = customer("talking", "+14155550101", wrote_hours_ago=2, twilio=twilio)  # window open
    quiet = customer("quiet", "+14155550102")  # never wrote: window closed, no template for a sale
    absent = customer("absent", "+14155550103", whatsapp=False)  # no WhatsApp number on file
    stale = customer("stale", "+14155550104", wrote_hours_ago=2)  # we think open; Twilio says 63016
    not_on = customer("not-on", "+14155550109", wrote_hours_ago=1, twilio=twilio)  # no WhatsApp: 63003

    state = campaign(name="spring", segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=2,
                     return_state=True)
    assert state.is_completed()

    [sent] = rows_of("campaign:spring", talking)
    assert (sent.channel, sent.status) == ("whatsapp", MessageStatus.sent)
    [free_form] = whatsapp_to(twilio, "+14155550101")
    assert "SPRING20" in free_form["Body"] and "ContentSid" not in free_form

    [direct] = rows_of("campaign:spring", absent)
    assert (direct.channel, direct.status) == ("sms", MessageStatus.sent)
    assert direct.reason_codes[:2] == ["no_address:whatsapp", "fallback:whatsapp->sms"]

    for cid, number, reason, asked in ((quiet, "+14155550102", "permanent:outside_window", 0),
                                       (stale, "+14155550104", "permanent:outside_window", 1),
                                       (not_on, "+14155550109", "permanent:invalid_address", 1)):
        first, second = rows_of("campaign:spring", cid)  # exactly one fallback row
        assert (first.channel, first.status) == ("whatsapp", MessageStatus.failed)
        assert first.reason_codes[-1] == reason
        assert (second.channel, second.status) == ("sms", MessageStatus.sent)
        assert second.dedupe_key == first.dedupe_key + ">fallback:whatsapp"
        assert len(whatsapp_to(twilio, number)) == asked and sms_to(twilio, number) == 1
    assert sms_to(twilio, "+14155550101") == 0

    # A re-run sends nothing again, on any channel.
    before = len(twilio.requests)
    assert campaign(name="spring", segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=2,
                    return_state=True).is_completed()
    assert len(twilio.requests) == before


def test_an_outage_uses_the_approved_template_outside_the_window_and_falls_back_once_on_63016(prefect_harness,
                                                                                      sqlite_url, world):
    twilio, _sendgrid = world
    talking = customer("talking", "+14155550101", wrote_hours_ago=2, twilio=twilio)
    quiet = customer("quiet", "+14155550102")  # outside the window: the approved template
    absent = customer("absent", "+14155550103", whatsapp=False)
    stale = customer("stale", "+14155550104", wrote_hours_ago=3)  # we think open; Twilio says 63016

    state = outage_notice(incident_id="inc-7", status="investigating", severity="major",
                          title="Card payments are failing", summary="We are rolling out a fix",
                          affected={"region": "eu"}, status_page_url="https://status.example.com/inc-7",
                          chunk_size=2, social_post=False, return_state=True)
    assert state.is_completed()
    prefix = "incident:inc-7:investigating"

    [free] = rows_of(prefix, talking)
    assert (free.channel, free.status) == ("whatsapp", MessageStatus.sent)
    assert "Body" in whatsapp_to(twilio, "+14155550101")[0]

    [template] = rows_of(prefix, quiet)
    assert (template.channel, template.status) == ("whatsapp", MessageStatus.sent)
    [form] = whatsapp_to(twilio, "+14155550102")
    assert form["ContentSid"] == OUTAGE_SID and "Card payments are failing" in form["ContentVariables"]

    [direct] = rows_of(prefix, absent)
    assert direct.channel == "sms" and "fallback:whatsapp->sms" in direct.reason_codes

    first, second = rows_of(prefix, stale)  # exactly one fallback
    assert (first.channel, first.reason_codes[-1]) == ("whatsapp", "permanent:outside_window")
    assert (second.channel, second.status) == ("sms", MessageStatus.sent)
    assert len(whatsapp_to(twilio, "+14155550104")) == 1 and sms_to(twilio, "+14155550104") == 1
