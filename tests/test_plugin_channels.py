"""Every built-in behaviour on channels the core has never heard of: WhatsApp (a plug-in adapter in
this repository) and the out-of-tree webhook channel (tests/plugins, installed by `make test`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.audience.preferences import current_choices
from orchestrator.consent import record_consent
from orchestrator.contact_points import set_contact_point
from orchestrator.db import session_scope
from orchestrator.links import preferences_url
from orchestrator.models import Customer
from orchestrator.policy import CustomerFacts, HistoryEntry, Intent, decide, parse_policy, reserve_chunk
from orchestrator.policy.explain import explain_customer
from orchestrator.policy.plan import plan_audience
from tests.support.web import web_fixture  # noqa: F401

NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
NIGHT = datetime(2026, 5, 6, 23, 30, tzinfo=UTC)
ADDRESS = {"whatsapp": "whatsapp:+14155550101", "webhook": "https://hooks.example.net/customers/1"}
CHANNELS = pytest.mark.parametrize("channel", ["whatsapp", "webhook"])


def policy_for(channel: str):
    return parse_policy({
        "topics": {
            "outage": {"priority": 90, "channels": [channel, "sms", "email"], "tone": "empathetic",
                       "bypass_caps": True, "when_capped": "fallback"},
            "marketing": {"priority": 10, "channels": [channel, "email"], "when_capped": "defer"},
        },
        "caps": [{"name": "plugin-1d", "max": 1, "window": "1d", "channel": channel, "topics": "all"}],
        "quiet_hours": {channel: {"start": "21:00", "end": "08:00"}},
    })


def opted_in(channel: str, customer_id: int = 1) -> dict:
    # WhatsApp takes only customers who opted in to WhatsApp itself; the webhook channel needs none.
    return {(customer_id, channel, "*"): "opted_in"} if channel == "whatsapp" else {}


def facts(channel: str, **kw) -> CustomerFacts:
    kw.setdefault("addresses", {channel: ADDRESS[channel], "sms": "+14155550101", "email": "a@example.com"})
    kw.setdefault("consent", opted_in(channel))
    return CustomerFacts(id=1, zone=ZoneInfo("UTC"), **kw)


def one(channel: str, topic: str = "marketing", now: datetime = NOON, **kw):
    f = kw.pop("f", None) or facts(channel)
    [decision] = decide(Intent(1, topic, "outage_notice", "k"), f, now, kw.pop("policy", policy_for(channel)))
    return decision


@CHANNELS
def test_a_plugin_channel_is_routed_like_any_other(channel):
    d = one(channel)
    assert (d.outcome, d.channel, d.reason_codes) == ("send", channel, [f"route:{channel}"])


@CHANNELS
def test_quiet_hours(channel):
    d = one(channel, now=NIGHT)
    assert (d.outcome, d.channel) == ("defer", channel)
    assert f"quiet_hours:{channel}" in d.reason_codes
    assert d.send_at == datetime(2026, 5, 7, 8, 0, tzinfo=UTC)


def test_whatsapp_brings_its_own_quiet_hours_when_the_policy_names_none():
    policy = parse_policy({"topics": {"marketing": {"channels": ["whatsapp", "email"]}}})
    d = one("whatsapp", now=NIGHT, policy=policy)
    assert (d.outcome, d.channel, d.reason_codes[0]) == ("defer", "whatsapp", "quiet_hours:whatsapp")


@CHANNELS
def test_caps_per_channel(channel):
    earlier = [HistoryEntry("marketing", channel, NOON - timedelta(hours=2))]
    d = one(channel, f=facts(channel, history=earlier))
    assert (d.outcome, d.channel) == ("defer", channel)
    assert "cap:plugin-1d" in d.reason_codes and d.send_at == NOON + timedelta(hours=22)
    # A message on another channel does not count toward this channel's cap.
    elsewhere = [HistoryEntry("marketing", "email", NOON - timedelta(hours=2))]
    assert one(channel, f=facts(channel, history=elsewhere)).outcome == "send"


@CHANNELS
def test_consent_per_channel_and_topic(channel):
    consent = {**opted_in(channel), (1, channel, "marketing"): "opted_out"}
    marketing = one(channel, f=facts(channel, consent=consent))
    assert marketing.channel == "email"
    assert marketing.reason_codes == ["consent:opted_out", f"fallback:{channel}->email", "route:email"]
    assert one(channel, "outage", f=facts(channel, consent=consent)).channel == channel


def test_whatsapp_needs_an_opt_in_of_its_own():
    for consent in ({}, {(1, "*", "*"): "opted_in"}):
        d = one("whatsapp", f=facts("whatsapp", consent=consent))
        assert d.channel == "email" and d.reason_codes[0] == "consent:no_opt_in"
    # A WhatsApp opt-out is an opt-out, whatever else is on record.
    left = {(1, "*", "*"): "opted_in", (1, "whatsapp", "*"): "opted_out"}
    d = one("whatsapp", f=facts("whatsapp", consent=left))
    assert d.channel == "email" and d.reason_codes[0] == "consent:opted_out"


@CHANNELS
def test_fallback_when_the_customer_has_no_address_on_the_channel(channel):
    d = one(channel, "outage", f=facts(channel, addresses={"sms": "+14155550101"}))
    assert d.channel == "sms"
    assert d.reason_codes == [f"no_address:{channel}", f"fallback:{channel}->sms", "route:sms"]


# --- through the database: explain, plan and the preference centre --------------------------------

def reserve(customer_id: int, key: str, policy):
    return reserve_chunk([Intent(customer_id, "marketing", "spring_sale", key)], now=NOON, policy=policy).rows


def add_customer(channel: str, external_id: str = "ada", with_address: bool = True) -> int:
    with session_scope() as session:
        customer = Customer(external_id=external_id, name="Ada", email=f"{external_id}@example.com")
        session.add(customer)
        session.flush()
        if with_address:
            set_contact_point(session, customer.id, channel, ADDRESS[channel], "import")
        if channel == "whatsapp":
            record_consent(session, customer.id, "whatsapp", "*", "opted_in", "import")
        return customer.id


@CHANNELS
def test_explain_and_plan(channel, sqlite_url):
    reached = add_customer(channel, "reached")
    unreached = add_customer(channel, "unreached", with_address=False)
    policy = policy_for(channel)
    plan = plan_audience(None, "marketing", "spring_sale", NOON, customer_ids=[reached, unreached],
                         policy=policy)
    assert dict(plan.channels) == {channel: 1, "email": 1}
    assert plan.reasons[f"no_address:{channel}"] == 1 and plan.reasons[f"fallback:{channel}->email"] == 1
    intents = [Intent(cid, "marketing", "spring_sale", "spring") for cid in (reached, unreached)]
    reserve_chunk(intents, now=NOON, policy=policy)
    with session_scope() as session:
        [mine] = explain_customer(session, "reached")
        [theirs] = explain_customer(session, "unreached")
    assert (mine.channel, mine.reason_codes) == (channel, [f"route:{channel}"])
    assert theirs.channel == "email" and f"no_address:{channel}" in theirs.reason_codes


@CHANNELS
def test_the_preference_centre_offers_the_channel_and_unticking_it_holds(channel, web, sqlite_url):
    cid = add_customer(channel)
    label = {"whatsapp": "WhatsApp", "webhook": "Webhook"}[channel]
    url = "/" + preferences_url(cid).split("://", 1)[1].split("/", 1)[1]
    page = web.client.get(url)
    assert f'value="{channel}"' in page.text and label in page.text
    assert 'value="sms"' not in page.text  # no phone number on file: not offered
    form = {"channel": ["email"], "topic": ["marketing", "loyalty", "feedback"], "frequency": "any",
            "quiet_start": "", "quiet_end": "", "preferred_channel": ""}
    saved = web.client.post(url, data=form, headers={"Origin": "https://hooks.example.com"},
                            follow_redirects=False)
    assert saved.status_code == 303
    with session_scope() as session:
        assert channel not in current_choices(session, session.get(Customer, cid)).channels
    policy = policy_for(channel)
    [decision] = reserve(cid, "after", policy)
    assert decision.channel == "email"
    # Ticking it again brings it back.
    form["channel"] = ["email", channel]
    web.client.post(url, data=form, headers={"Origin": "https://hooks.example.com"})
    [decision] = reserve(cid, "again", policy)
    assert decision.channel == channel
