"""Lifecycle flows: anniversaries and milestones once a year, complaints acknowledged fast, surveys after."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from flows.lifecycle import (
    anniversary_condition,
    complaint_acknowledgement,
    complaint_resolved,
    lifecycle_daily,
)
from orchestrator.db import session_scope
from orchestrator.models import Customer, MessageStatus, PhoneTask
from tests.support.flow_world import DAYTIME, add_customer, by_customer, ledger, use_fake_providers
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
    today = date.today()
    # It is 13:00 for them, so the 10:00 local send time is tomorrow morning: the message waits.
    first_year = add_customer("one", email="one@example.com",
                              customer_since=today.replace(year=today.year - 1))
    third_year = add_customer("three", email="three@example.com",
                              customer_since=today.replace(year=today.year - 3), hour=DAYTIME)
    add_customer("other", email="other@example.com", customer_since=date(2001, 1, 1)
                 if (today.month, today.day) != (1, 1) else date(2001, 1, 2))

    result = lifecycle_daily(day=today)

    rows = by_customer(ledger(f"anniversary:{today.year}"))
    assert set(rows) == {first_year, third_year}
    assert rows[first_year].template == "loyalty_milestone"
    assert rows[first_year].data["milestone"] == "1 year with us"
    assert rows[third_year].template == "anniversary" and rows[third_year].data["years"] == 3
    assert {m.status for m in rows.values()} == {MessageStatus.deferred}
    assert all("send_time:10:00" in m.reason_codes for m in rows.values())
    assert result["reserved"] == {"deferred": 2}

    assert lifecycle_daily(day=today)["reserved"] == {"duplicate": 2}
    assert len(ledger("anniversary:")) == 2 and fake_sendgrid.requests == []


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
