"""Lifecycle flows: anniversaries and milestones once a year, complaints acknowledged fast, surveys after."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flows.lifecycle import complaint_acknowledgement, complaint_resolved, lifecycle_daily
from orchestrator.db import session_scope
from orchestrator.lifecycle import anniversary_condition, anniversary_for_run, celebrates
from orchestrator.models import Customer, MessageStatus, PhoneTask
from tests.support.flow_world import add_customer, by_customer, ledger, use_fake_providers
from tests.support.ledger import add_messages


def celebrating(day: date) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(Customer.external_id).where(anniversary_condition(day))
                              .order_by(Customer.external_id)))


def test_anniversaries_are_matched_by_month_and_day_and_leap_day_customers_celebrate_on_feb_28(sqlite_url):
    add_customer("leap", customer_since=date(2024, 2, 29))
    add_customer("feb28", customer_since=date(2023, 2, 28))
    add_customer("new", customer_since=date(2027, 2, 28))  # joined today: no anniversary yet
    add_customer("march", customer_since=date(2020, 3, 1))
    add_customer("unknown")

    assert celebrating(date(2027, 2, 28)) == ["feb28", "leap"]
    assert celebrating(date(2028, 2, 28)) == ["feb28", "new"]  # a leap year: leap day customers wait
    assert celebrating(date(2028, 2, 29)) == ["leap"]
    assert celebrating(date(2027, 3, 1)) == ["march"]


def test_the_daily_run_recognises_each_customer_once_a_year(prefect_harness, sqlite_url, monkeypatch,
                                                           fake_sendgrid):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    # Tokyo's 10:00 tomorrow (01:00 UTC) falls in today's run (from 06:00 UTC): they hear tomorrow,
    # on the anniversary itself; their anniversary today was yesterday's run's.
    first_year = _customer_in("one", "Asia/Tokyo", tomorrow.replace(year=tomorrow.year - 1))
    third_year = _customer_in("three", "Asia/Tokyo", tomorrow.replace(year=tomorrow.year - 3))
    _customer_in("tokyo-today", "Asia/Tokyo", today.replace(year=today.year - 2))
    add_customer("other", email="other@example.com", customer_since=date(2001, 1, 1)
                 if (tomorrow.month, tomorrow.day) != (1, 1) else date(2001, 1, 2))

    result = lifecycle_daily(day=today)

    rows = by_customer(ledger(f"anniversary:{tomorrow.year}"))
    assert set(rows) == {first_year, third_year}
    assert rows[first_year].template == "loyalty_milestone"
    assert rows[first_year].data["milestone"] == "1 year with us"
    assert rows[third_year].template == "anniversary" and rows[third_year].data["years"] == 3
    assert {m.status for m in rows.values()} == {MessageStatus.deferred}
    ten_in_tokyo = datetime.combine(tomorrow, time(10), ZoneInfo("Asia/Tokyo")).astimezone(UTC)
    assert {m.send_at.replace(tzinfo=UTC) for m in rows.values()} == {ten_in_tokyo}
    assert all(f"send_time:{tomorrow.isoformat()}T10:00:00" in m.reason_codes for m in rows.values())
    assert result["reserved"] == {"deferred": 2}

    assert lifecycle_daily(day=today)["reserved"] == {"duplicate": 2}
    assert len(ledger("anniversary:")) == 2 and fake_sendgrid.requests == []


def _customer_in(external_id: str, zone: str, since: date) -> int:
    with session_scope() as s:
        customer = Customer(external_id=external_id, email=f"{external_id}@example.com", timezone=zone,
                            customer_since=since)
        s.add(customer)
        s.flush()
        return customer.id


# Every whole-hour offset from UTC-12 to UTC+14 (Etc/GMT signs are inverted), and the odd ones.
ZONES = [f"Etc/GMT{-h:+d}" if h else "UTC" for h in range(-12, 15)] + [
    "Asia/Kathmandu", "Asia/Kolkata", "Pacific/Chatham", "Australia/Eucla", "Pacific/Marquesas",
    "America/St_Johns", "Asia/Tokyo", "Pacific/Kiritimati", "America/New_York", "Europe/Berlin",
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("anniversary", [date(2026, 6, 15), date(2026, 3, 8), date(2026, 11, 1),
                                         date(2027, 1, 1), date(2027, 2, 28)])
def test_every_zone_hears_on_the_anniversary_itself_at_10_local(zone, anniversary):
    # joined in 2020; the Feb 28 case is a leap-day customer, who celebrates on Feb 28 in 2027
    since = date(2024, 2, 29) if anniversary == date(2027, 2, 28) else anniversary.replace(year=2020)
    runs = [anniversary + timedelta(days=n) for n in range(-3, 4)]
    taken = [(run, local_day) for run in runs if (local_day := anniversary_for_run(since, zone, run))]
    assert len(taken) == 1, taken  # exactly one daily run recognises it
    [(run, local_day)] = taken
    assert local_day == anniversary
    ten_local = datetime.combine(anniversary, time(10), ZoneInfo(zone))
    run_start = datetime.combine(run, time(6), UTC)
    # the run comes before 10:00 local on the day, so "10:00" is that day's, not the next
    assert run_start <= ten_local < run_start + timedelta(days=1)


def test_celebrates_matches_the_sql_condition():
    leap, march = date(2024, 2, 29), date(2020, 3, 1)
    assert celebrates(leap, date(2027, 2, 28)) and not celebrates(leap, date(2028, 2, 28))
    assert celebrates(march, date(2027, 3, 1)) and not celebrates(date(2027, 3, 1), date(2027, 3, 1))


def test_a_complaint_is_acknowledged_at_once_and_premium_customers_also_get_a_call(
        prefect_harness, sqlite_url, monkeypatch, fake_sendgrid):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    vip = add_customer("vip", email="vip@example.com", phone="+14155550144", tier="premium")
    add_customer("std", email="std@example.com", phone="+14155550155")

    premium = complaint_acknowledgement(customer="vip", complaint_id="CASE-1", summary="my refund is late")
    standard = complaint_acknowledgement(customer="std", complaint_id="CASE-2", summary="the app crashes")

    assert premium["call"] and not standard["call"]
    vip_rows = ledger("complaint:CASE-1")
    assert sorted((m.channel, m.status, m.tone) for m in vip_rows.values()) == [
        ("email", "sent", "empathetic"), ("phone", "sent", "empathetic")]
    with session_scope() as s:
        (call,) = s.exec(select(PhoneTask)).all()
    assert call[0].customer_id == vip and "refund" in call[0].script
    assert [r.address for r in fake_sendgrid.requests] == ["vip@example.com", "std@example.com"]
    assert "CASE-1" in fake_sendgrid.requests[0].body.decode()

    complaint_acknowledgement(customer="vip", complaint_id="CASE-1", summary="my refund is late")
    assert len(fake_sendgrid.requests) == 2  # acknowledged once


def test_the_survey_after_resolution_goes_out_once_and_within_the_caps(prefect_harness, sqlite_url,
                                                                       monkeypatch, fake_sendgrid):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    add_customer("ada", email="ada@example.com")

    for _ in range(2):
        complaint_resolved(customer="ada", complaint_id="CASE-9", survey_url="https://example.com/s/9")
    (row,) = ledger("survey:complaint:CASE-9").values()
    assert row.status == MessageStatus.sent and row.topic == "feedback"
    assert len(fake_sendgrid.requests) == 1

    # Feedback counts toward the weekly cap of non-critical messages (3 a week): with two support
    # messages this week besides the survey, the next survey is dropped.
    add_messages([row.customer_id], topic="support", status=MessageStatus.sent, dedupe="support")
    add_messages([row.customer_id], topic="support", status=MessageStatus.sent, dedupe="support-2")
    complaint_resolved(customer="ada", complaint_id="CASE-10", survey_url="https://example.com/s")
    (capped,) = ledger("survey:complaint:CASE-10").values()
    assert capped.status == MessageStatus.suppressed and "cap:non-critical-1w" in capped.reason_codes
    assert len(fake_sendgrid.requests) == 1


def test_an_unknown_customer_is_a_clear_error(prefect_harness, sqlite_url):
    state = complaint_acknowledgement(customer="nobody", complaint_id="CASE-3", summary="x",
                                      return_state=True)
    assert state.is_failed() and "no customer" in str(state.result(raise_on_failure=False))
    assert ledger() == {}
