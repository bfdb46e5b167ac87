"""The shared rate budget: slots at the declared rate, urgent traffic first, AIMD on 429s, and the
call centre's business hours. The clock is given, so nothing here sleeps."""

from datetime import UTC, datetime

import pytest

from orchestrator.pacing.budget import Demand, lane_state, slow_down, take
from orchestrator.policy.rates import RateRule

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()  # a Monday


def approx(seconds):
    """Epoch seconds agree to the millisecond (pytest's relative default would allow half an hour)."""
    return pytest.approx(seconds, abs=1e-3)


def rule(name="sms", per_second=10.0, burst=1.0, **kw) -> RateRule:
    return RateRule(name=name, per_second=per_second, burst=burst, channel=kw.pop("channel", name), **kw)


def test_slots_follow_the_declared_rate(db_url):
    sms = rule()
    slots = [take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=T0) for _ in range(5)]
    assert [s.at - T0 for s in slots] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-3)
    # A slot further away than the sender will wait is not taken: the messages wait in the ledger.
    far = take([Demand(sms, 30)], channel="sms", urgent=False, max_wait=0.2, now=T0)
    assert far.at is None and far.held_by == "sms" and far.free_at == approx(T0 + 0.5)
    assert take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=T0).at == approx(T0 + 0.5)


def test_a_burst_may_go_together_but_never_more_than_the_rate_over_time(db_url):
    email = rule("email", per_second=100.0, burst=10.0)
    starts = [take([Demand(email, 10)], channel="email", urgent=False, max_wait=60, now=T0).at
              for _ in range(30)]
    sent_by = {t: 10 * (i + 1) for i, t in enumerate(starts)}
    assert max(n for t, n in sent_by.items() if t < T0 + 1.0) <= 100 + 10


def test_every_rate_of_a_message_must_allow_it(db_url):
    sms, marketing = rule(), rule("marketing", per_second=2.0, channel=None, topics=["marketing"])
    first = take([Demand(sms, 1), Demand(marketing, 1)], channel="sms", urgent=False, max_wait=10, now=T0)
    second = take([Demand(sms, 1), Demand(marketing, 1)], channel="sms", urgent=False, max_wait=10, now=T0)
    assert first.at == approx(T0) and second.at == approx(T0 + 0.5)
    assert second.held_by == "marketing"


def test_bulk_traffic_yields_to_urgent_traffic_on_its_channel(db_url):
    sms = rule()
    urgent = take([Demand(sms, 1)], channel="sms", urgent=True, max_wait=10, now=T0)
    bulk = take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=0.5, now=T0 + 0.2)
    assert urgent.at == approx(T0)
    assert bulk.at is None and bulk.held_by == "urgent"
    # An urgent sender is not held back by the mark, only by the rate itself.
    again = take([Demand(sms, 1)], channel="sms", urgent=True, max_wait=10, now=T0 + 0.2)
    assert again.at == approx(T0 + 0.2)
    # Once urgent traffic stops, the lane is bulk's again.
    assert take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=0.5, now=T0 + 5).at == approx(T0 + 5)
    # Urgent traffic on another channel does not hold this one.
    take([Demand(rule("email", 100.0), 1)], channel="email", urgent=True, max_wait=1, now=T0 + 6)
    assert take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=0.5, now=T0 + 6).at == approx(T0 + 6)


def test_a_429_halves_the_rate_honours_retry_after_and_the_rate_grows_back(db_url):
    sms = rule()
    take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=T0)
    slow_down(["sms"], retry_after=2.0, now=T0 + 0.05)
    assert lane_state(["sms"])["sms"]["rate_limited"] == 1
    resumed = take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=T0 + 0.1)
    assert resumed.at == approx(T0 + 2.05)  # nothing before retry_after is over
    after = take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=T0 + 0.1)
    # Half the rate (5/s, 0.2 s a message), grown back by a tenth of the rate per second since the 429.
    assert after.at - resumed.at == pytest.approx(1 / (10 * 0.51), rel=0.05)
    # A second 429 in the same second does not halve it again (one burst, one decrease).
    slow_down(["sms"], retry_after=None, now=T0 + 0.5)
    assert lane_state(["sms"])["sms"]["factor"] == pytest.approx(0.505, abs=1e-3)
    later = T0 + 60
    take([Demand(sms, 1)], channel="sms", urgent=False, max_wait=10, now=later)
    assert lane_state(["sms"])["sms"]["factor"] == 1.0


def test_phone_tasks_wait_for_the_call_centre_to_open(db_url):
    from orchestrator.policy.rates import BusinessHours

    hours = BusinessHours(start="09:00", end="17:00", days="mon-fri", timezone="UTC")
    phone = rule("phone", per_second=40 / 3600, business_hours=hours)
    saturday_night = datetime(2026, 11, 28, 22, 0, tzinfo=UTC).timestamp()
    slot = take([Demand(phone, 1)], channel="phone", urgent=False, max_wait=60, now=saturday_night)
    assert slot.at is None and slot.held_by == "phone"
    assert datetime.fromtimestamp(slot.free_at, UTC) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    # During the shift, 40 an hour: 90 s apart.
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()
    first = take([Demand(phone, 1)], channel="phone", urgent=False, max_wait=600, now=monday)
    second = take([Demand(phone, 1)], channel="phone", urgent=False, max_wait=600, now=monday)
    assert (first.at, second.at - first.at) == (approx(monday), approx(90))
