from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from orchestrator.policy import (
    CustomerFacts,
    HistoryEntry,
    Intent,
    decide,
    decide_for_customer,
    load_policy,
    parse_policy,
)
from orchestrator.settings import REPO_ROOT

POLICY = load_policy(REPO_ROOT / "policy.yaml")
NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)  # a Wednesday, noon UTC
NIGHT = datetime(2026, 5, 6, 23, 30, tzinfo=UTC)


def facts(**kw) -> CustomerFacts:
    kw.setdefault("addresses", {"email": "a@example.com", "sms": "+15551230000", "phone": "+15551230000",
                                "social": "12345"})
    kw.setdefault("zone", ZoneInfo("UTC"))
    return CustomerFacts(id=1, **kw)


def intent(topic="marketing", **kw) -> Intent:
    return Intent(customer_id=1, topic=topic, template="t", dedupe_key=kw.pop("key", "k"), **kw)


def one(topic="marketing", f=None, now=NOON, **kw):
    decisions = decide(intent(topic, **kw), f or facts(), now, POLICY)
    assert len(decisions) == 1
    return decisions[0]


def test_plain_send_on_the_first_channel_with_the_topic_tone():
    d = one()
    assert (d.outcome, d.channel, d.tone, d.send_at) == ("send", "email", "playful", NOON)
    assert d.status == "planned"
    assert d.reason_codes == ["route:email"] and d.reason_text


def test_opt_out_falls_back_to_the_next_channel():
    f = facts(consent={(1, "email", "marketing"): "opted_out"})
    d = one(f=f)
    assert d.channel == "social"
    assert d.reason_codes == ["consent:opted_out", "fallback:email->social", "route:social"]
    # Opt-out everywhere: suppressed, on the topic's first channel so re-runs still dedupe.
    d = one(f=facts(consent={(1, "*", "marketing"): "opted_out"}))
    assert (d.outcome, d.channel, d.status) == ("suppress", "email", "suppressed")
    assert "consent:opted_out" in d.reason_codes


def test_missing_and_suppressed_addresses_are_skipped_with_reasons():
    f = facts(addresses={"email": "a@example.com", "sms": "+15551230000"}, suppressed={"email": "bounce"})
    d = one(f=f)
    assert d.channel == "sms"
    assert d.reason_codes[:2] == ["suppressed:bounce", "no_address:social"]
    assert "fallback:email->sms" in d.reason_codes
    d = one(f=facts(addresses={}))
    assert d.outcome == "suppress"
    assert d.reason_codes == ["no_address:email", "no_address:social", "no_address:sms"]


def test_do_not_contact_blocks_all_but_required_notices_and_says_so():
    f = facts(do_not_contact=True)
    assert one(f=f).reason_codes == ["do_not_contact"]
    assert one("outage", f=f).outcome == "suppress"
    d = one("security", f=f)
    assert d.outcome == "send" and "bypass:security" in d.reason_codes
    assert "required" in d.reason_text
    # Consent opt-outs still hold for required notices.
    f = facts(do_not_contact=True, consent={(1, "*", "security"): "opted_out"})
    assert one("security", f=f).outcome == "suppress"


def test_marketing_cap_drops_the_second_campaign():
    f = facts(history=[HistoryEntry("marketing", "email", NOON - timedelta(days=1))])
    d = one(f=f)
    assert d.outcome == "suppress" and "cap:marketing-2d" in d.reason_codes
    f = facts(history=[HistoryEntry("marketing", "email", NOON - timedelta(days=2, minutes=1))])
    assert one(f=f).outcome == "send"


def test_weekly_cap_defers_support_to_the_next_free_slot():
    history = [HistoryEntry(t, "email", NOON - timedelta(days=d)) for t, d in
               (("loyalty", 6), ("feedback", 3), ("marketing", 1))]
    d = one("support", f=facts(history=history))
    assert d.outcome == "defer" and d.status == "deferred"
    assert d.send_at == NOON + timedelta(days=1)  # when the loyalty message leaves the 7-day window
    assert d.reason_codes[:2] == ["cap:non-critical-1w", "defer:non-critical-1w"]


def test_transactional_and_security_are_never_capped():
    history = [HistoryEntry("marketing", "sms", NOON - timedelta(hours=h)) for h in range(1, 10)]
    for topic in ("transactional", "security"):
        d = one(topic, f=facts(history=history), channels=["sms"])
        assert d.outcome == "send" and not any(c.startswith("cap:") for c in d.reason_codes)


def test_outage_bypasses_a_full_cap_visibly():
    history = [HistoryEntry("support", "sms", NOON - timedelta(hours=2))]
    d = one("outage", f=facts(history=history), channels=["sms"])
    assert d.outcome == "send" and "bypass:cap:sms-1d" in d.reason_codes
    assert "Cap sms-1d (1 per day on sms) is reached, but outage notices bypass" in d.reason_text
    # Every cap that would have held it is named, not only the first.
    history = [HistoryEntry("support", "sms", NOON - timedelta(hours=h)) for h in (2, 3, 4)]
    raw = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    raw["caps"].append({"name": "outage-3d", "max": 1, "window": "3d", "topics": ["outage", "support"]})
    d = decide(intent("outage", channels=["sms"]), facts(history=history), NOON, parse_policy(raw))[0]
    bypassed = [c for c in d.reason_codes if c.startswith("bypass:")]
    assert bypassed == ["bypass:cap:sms-1d", "bypass:cap:outage-3d"]
    # Nothing full, nothing bypassed: no bypass code.
    assert not any(c.startswith("bypass:") for c in one("outage", channels=["sms"]).reason_codes)


def test_security_inside_quiet_hours_says_it_bypassed_them():
    ny = ZoneInfo("America/New_York")
    night = datetime(2026, 5, 6, 23, 0, tzinfo=ny).astimezone(UTC)
    d = one("security", f=facts(zone=ny), now=night, channels=["sms"])
    assert d.outcome == "send" and "bypass:quiet_hours" in d.reason_codes
    assert "Inside quiet hours for sms 21:00-08:00 local, but security notices go out" in d.reason_text
    # Personal quiet hours on email are bypassed visibly too; daytime carries no bypass code.
    d = one("security", f=facts(zone=ny, quiet=(time(22), time(7))), now=night, channels=["email"])
    assert "bypass:quiet_hours" in d.reason_codes and "personal quiet hours" in d.reason_text
    assert "bypass:quiet_hours" not in one("security", f=facts(zone=ny), channels=["sms"]).reason_codes
    # The high-touch phone call of a major outage at night: the policy's topic decides.
    raw = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    raw["topics"]["outage"]["bypass_quiet_hours"] = True
    decisions = decide(intent("outage", data={"severity": "major"}), facts(zone=ny, tier="premium"),
                       night, parse_policy(raw))
    assert decisions[1].channel == "phone" and "bypass:quiet_hours" in decisions[1].reason_codes


def test_sms_cap_falls_back_when_the_topic_says_so():
    history = [HistoryEntry("support", "sms", NOON - timedelta(hours=2))]
    data = {"channels": ["sms", "email"]}
    d = one("transactional", f=facts(history=history), **data)
    assert d.channel == "sms"  # transactional does not count: not capped
    raw = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    raw["topics"]["loyalty"]["when_capped"] = "fallback"
    policy = parse_policy(raw)
    d = decide(intent("loyalty", **data), facts(history=history), NOON, policy)[0]
    assert d.channel == "email" and d.reason_codes[:2] == ["cap:sms-1d", "fallback:sms->email"]


def test_chosen_frequency_becomes_a_personal_cap():
    f = facts(frequency="weekly", history=[HistoryEntry("loyalty", "email", NOON - timedelta(days=3))])
    d = one("support", f=f)
    assert d.outcome == "defer" and "cap:preference-weekly" in d.reason_codes
    assert d.send_at == NOON + timedelta(days=4)
    assert one("transactional", f=f).outcome == "send"


def test_preferred_channels_come_first():
    d = one(f=facts(preferred_channels=["sms"]))
    assert d.channel == "sms" and d.reason_codes[0] == "preference:sms"


def test_quiet_hours_defer_sms_but_not_security():
    ny = ZoneInfo("America/New_York")
    f = facts(zone=ny)
    night_local = datetime(2026, 5, 6, 23, 0, tzinfo=ny)
    d = one("support", f=f, now=night_local.astimezone(UTC), channels=["sms"])
    assert d.outcome == "defer" and d.send_at == datetime(2026, 5, 7, 8, 0, tzinfo=ny)
    assert "quiet_hours:sms" in d.reason_codes
    d = one("security", f=f, now=night_local.astimezone(UTC), channels=["sms"])
    assert d.outcome == "send"
    # Email has no quiet hours by default; personal quiet hours apply to every channel.
    assert one("support", f=f, now=night_local.astimezone(UTC)).outcome == "send"
    f = facts(zone=ny, quiet=(time(22), time(7)))
    d = one("support", f=f, now=night_local.astimezone(UTC))
    assert d.send_at == datetime(2026, 5, 7, 7, 0, tzinfo=ny) and "quiet_hours:personal" in d.reason_codes


def test_campaign_local_send_time():
    f = facts(zone=ZoneInfo("Asia/Kathmandu"))
    d = one(f=f, send_time="10:00", now=datetime(2026, 5, 6, 1, 0, tzinfo=UTC))
    assert d.outcome == "defer" and d.send_at == datetime(2026, 5, 6, 4, 15, tzinfo=UTC)
    assert "send_time:10:00" in d.reason_codes


def test_deadline_that_cannot_be_met_suppresses():
    history = [HistoryEntry("support", "email", NOON - timedelta(hours=1))] * 3
    d = one("support", f=facts(history=history), deadline=NOON + timedelta(hours=2))
    assert d.outcome == "suppress" and "deadline:email" in d.reason_codes


@pytest.mark.parametrize(
    "tier, severity, extra",
    [("premium", "major", True), ("premium", "critical", True), ("premium", "minor", False),
     ("standard", "major", False)],
)
def test_high_touch_adds_a_phone_task(tier, severity, extra):
    decisions = decide(intent("outage", data={"severity": severity}), facts(tier=tier), NOON, POLICY)
    assert decisions[0].channel == "email"
    if extra:
        phone = decisions[1]
        assert (phone.channel, phone.outcome, phone.high_touch, phone.tone) == (
            "phone", "send", "premium-major-outage", "personal")
        assert "high_touch:premium-major-outage" in phone.reason_codes
    else:
        assert len(decisions) == 1


def test_intents_in_one_chunk_see_each_others_slots_by_priority():
    f = facts()
    ds = decide_for_customer([intent("marketing", key="a"), intent("marketing", key="b"),
                              intent("security", key="c")], f, NOON, POLICY)
    assert [d.topic for d in ds] == ["security", "marketing", "marketing"]
    assert [d.outcome for d in ds] == ["send", "send", "suppress"]
