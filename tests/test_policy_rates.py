"""The ``rates:`` section of policy.yaml: parsing, validation errors that name the key path, and
which rates a message waits for (an adapter's declared default overridden by the policy)."""

from datetime import UTC, datetime

import pytest
import yaml

from channels.base import Limits
from orchestrator.pacing.pacer import Pacer
from orchestrator.policy import PolicyError, parse_policy
from orchestrator.settings import REPO_ROOT


def policy_with(rates) -> dict:
    data = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    data["rates"] = rates
    return data


def test_rates_per_channel_adapter_topics_and_phone_capacity():
    policy = parse_policy(policy_with({
        "urgent_priority": 90,
        "sms": "10/s",
        "sendgrid": "50 requests/s",
        "marketing": {"rate": "2000/min", "topics": ["marketing", "loyalty"]},
        "phone": {"capacity": "40/h", "business_hours": {
            "start": "09:00", "end": "17:00", "days": "mon-fri", "timezone": "Europe/London"}},
    }))
    rates = policy.rates
    assert rates.urgent_priority == 90
    sms, sendgrid, marketing, phone = (rates.rules[n] for n in ("sms", "sendgrid", "marketing", "phone"))
    assert (sms.per_second, sms.unit, sms.channel) == (10, "messages", "sms")
    assert (sendgrid.per_second, sendgrid.unit, sendgrid.adapter) == (50, "requests", "sendgrid")
    assert marketing.per_second == pytest.approx(2000 / 60) and marketing.topics == ["marketing", "loyalty"]
    assert phone.per_second == pytest.approx(40 / 3600)
    assert phone.business_hours.days == ["mon", "tue", "wed", "thu", "fri"]
    assert [r.name for r in rates.for_message("email", "sendgrid", "marketing")] == ["sendgrid", "marketing"]
    assert [r.name for r in rates.for_message("sms", "twilio", "outage")] == ["sms"]


def test_business_hours_next_opening_in_the_call_centres_zone():
    rates = parse_policy(policy_with({"phone": {"capacity": "40/h", "business_hours": {
        "start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"],
        "timezone": "America/New_York"}}})).rates
    hours = rates.rules["phone"].business_hours
    friday_evening = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # 18:00 in New York
    assert hours.next_open(friday_evening) == datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # Monday 09:00
    monday_noon = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    assert hours.next_open(monday_noon) == monday_noon


@pytest.mark.parametrize(
    "rates, expected",
    [
        ({"sms": "fast"}, "rates.sms: a rate looks like"),
        ({"sms": {"rate": "0/s"}}, "rates.sms.rate: a rate looks like"),
        ({"sms": {"rate": "10/s", "speed": 3}}, "rates.sms.speed: unknown key"),
        ({"pigeon": "1/s"}, "rates.pigeon: not a channel"),
        ({"promo": {"rate": "5/s", "topics": ["newsletters"]}},
         "rates.promo.topics: unknown topic 'newsletters'"),
        ({"promo": {"rate": "5 requests/s", "topics": ["marketing"]}}, "counts messages, not requests"),
        ({"email": {"rate": "5/s", "topics": ["marketing"]}},
         "rates.email.topics: a rate per set of topics needs"),
        ({"sms": {"rate": "1/s", "business_hours": {"start": "09:00", "end": "17:00"}}},
         "rates.sms.business_hours: only the phone channel"),
        ({"phone": {"capacity": "4/h", "business_hours": {"start": "18:00", "end": "09:00"}}},
         "rates.phone.business_hours: end must be after start"),
        ({"phone": {"capacity": "4/h", "business_hours": {"start": "9", "end": "17:00"}}},
         "rates.phone.business_hours.start"),
        ({"phone": {"capacity": "4/h", "business_hours": {"start": "09:00", "end": "17:00",
                                                          "timezone": "Mars/Olympus"}}},
         "rates.phone.business_hours.timezone: unknown time zone"),
        ({"phone": {"capacity": "4/h",
                    "business_hours": {"start": "09:00", "end": "17:00", "days": "mon-fun"}}},
         "rates.phone.business_hours.days"),
        ({"sms": {"rate": "10/s", "burst": 0}}, "rates.sms.burst"),
        ({"urgent_priority": "high"}, "rates.urgent_priority"),
        ({"sms": {"rate": "10/s", "capacity": "5/h"}}, "rates.sms: give exactly one of"),
    ],
)
def test_a_bad_rate_is_an_error_naming_its_key_path(rates, expected):
    with pytest.raises(PolicyError) as info:
        parse_policy(policy_with(rates), "policy.yaml")
    assert expected in str(info.value)
    assert str(info.value).startswith("policy.yaml: ")


class DeclaringAdapter:
    name = "twilio"
    channel = "sms"
    provider = "fake"

    def __init__(self, rate):
        self.limits = Limits(max_batch=100, rate_per_second=rate)


def test_an_adapters_declared_rate_applies_unless_the_policy_sets_one():
    adapter = DeclaringAdapter(rate=1.0)
    unpaced = Pacer(parse_policy(policy_with(None)).rates)
    [default] = unpaced.rules_for("sms", adapter, "outage")
    assert (default.name, default.per_second) == ("sms", 1.0)
    assert unpaced.rules_for("sms", DeclaringAdapter(rate=None), "outage") == []
    by_channel = Pacer(parse_policy(policy_with({"sms": "25/s"})).rates)
    assert [(r.name, r.per_second) for r in by_channel.rules_for("sms", adapter, "outage")] == [("sms", 25)]
    by_adapter = Pacer(parse_policy(policy_with({"twilio": "5/s"})).rates)
    assert [(r.name, r.per_second) for r in by_adapter.rules_for("sms", adapter, "outage")] == [("twilio", 5)]


def test_plan_estimates_when_the_last_message_goes_out_at_the_declared_rates():
    from collections import Counter

    from orchestrator.policy.plan import last_send_estimate

    policy = parse_policy(policy_with({
        "sms": "10/s", "marketing": {"rate": "600/min", "topics": ["marketing"]},
        "phone": {"capacity": "30/h",
                  "business_hours": {"start": "09:00", "end": "17:00", "days": "mon-fri"}},
    }))
    at = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)  # a Monday, an hour before the shift ends
    # 3,000 SMS at 10/s: 300 s; the marketing rate (10/s across channels) also has 1,000 emails.
    last, by = last_send_estimate(policy, "marketing", Counter(sms=3000, email=1000), at)
    assert (last - at).total_seconds() == pytest.approx(400) and by == "marketing"
    last, by = last_send_estimate(policy, "outage", Counter(sms=3000, email=1000), at)
    assert (last - at).total_seconds() == pytest.approx(300) and by == "sms"
    # 45 calls at 30 an hour: 30 before 17:00, the other 15 from 09:00 the next morning.
    last, by = last_send_estimate(policy, "support", Counter(phone=45), at)
    assert last == datetime(2026, 12, 1, 9, 30, tzinfo=UTC) and by == "phone"
    assert last_send_estimate(policy, "outage", Counter(email=10), at) == (None, None)
