"""Quiet hours hold at send time too: a message decided outside them but about to go out inside them
(a backlog, a rate that carries it past 21:00, a retry, a dispatch resumed after a crash) waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import ContactPreference, MessageStatus
from orchestrator.policy.explain import explain_customer
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter

NEW_YORK = "America/New_York"
DECIDED = datetime(2026, 12, 1, 1, 50, tzinfo=UTC)  # 20:50 in New York: outside the SMS quiet hours
NIGHT = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 02:00 in New York: inside 21:00-08:00
MORNING = datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 08:00 in New York: they end


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def test_an_sms_due_before_quiet_hours_but_sent_inside_them_waits_for_the_morning(db_url):
    (cid,) = add_customers(1, timezone=NEW_YORK)
    (mid,) = add_messages([cid], channel="sms", send_at=DECIDED, reason_text="Goes out by sms.")
    sms = RecordingAdapter("sms")

    report = dispatch_due(now=NIGHT, adapters={"sms": sms})

    row = messages([mid])[mid]
    assert sms.sent == [] and report.total("deferred") == 1 and report.failures == []
    assert row.status == MessageStatus.deferred and row.send_at == MORNING
    assert row.reason_codes == ["quiet_hours:sms"] and row.attempts == 0 and row.last_error is None
    assert row.reason_text == (
        "Goes out by sms. When it was due (2026-12-01 02:00 America/New_York) it was inside quiet hours for "
        "sms 21:00-08:00 local: waits until 2026-12-01 08:00 America/New_York.")
    with session_scope() as session:
        [explained] = explain_customer(session, cid)
    assert explained.reason_codes == ["quiet_hours:sms"]
    assert "waits until 2026-12-01 08:00" in explained.reason_text

    assert dispatch_due(now=MORNING - timedelta(minutes=1), adapters={"sms": sms}).processed == 0
    dispatch_due(now=MORNING, adapters={"sms": sms})
    assert messages([mid])[mid].status == MessageStatus.sent and sms.calls_per_message() == {mid: 1}


def test_email_has_no_quiet_hours_but_a_customers_own_hold_it(db_url):
    anyone, night_owl_hater = add_customers(2, timezone=NEW_YORK)
    with session_scope() as session:
        session.add(ContactPreference(customer_id=night_owl_hater, quiet_start="22:00", quiet_end="07:30"))
    free, held = add_messages([anyone, night_owl_hater], send_at=DECIDED)
    email = RecordingAdapter("email")

    dispatch_due(now=NIGHT, adapters={"email": email})

    rows = messages([free, held])
    assert list(email.calls_per_message()) == [free] and rows[free].status == MessageStatus.sent
    assert rows[held].status == MessageStatus.deferred and rows[held].reason_codes == ["quiet_hours:personal"]
    assert rows[held].send_at == datetime(2026, 12, 1, 12, 30, tzinfo=UTC)  # 07:30 in New York
    assert "personal quiet hours 22:00-07:30 local" in rows[held].reason_text


def test_security_notices_go_out_at_any_hour(db_url):
    (cid,) = add_customers(1, timezone=NEW_YORK)
    (mid,) = add_messages([cid], channel="sms", topic="security", send_at=DECIDED)
    sms = RecordingAdapter("sms")

    dispatch_due(now=NIGHT, adapters={"sms": sms})

    assert messages([mid])[mid].status == MessageStatus.sent and list(sms.calls_per_message()) == [mid]


def test_a_message_whose_deadline_comes_before_the_morning_fails_and_is_handed_to_the_fallback(db_url):
    (cid,) = add_customers(1, timezone=NEW_YORK)
    (mid,) = add_messages([cid], channel="sms", send_at=DECIDED, deadline=NIGHT + timedelta(hours=2))
    handed = []

    dispatch_due(now=NIGHT, adapters={"sms": RecordingAdapter("sms")}, on_permanent=handed.extend)

    row = messages([mid])[mid]
    assert row.status == MessageStatus.failed and row.reason_codes == ["expired:deadline"]
    assert "quiet hours for sms 21:00-08:00 local, which end (2026-12-01 08:00 America/New_York) after its " \
           "deadline" in row.last_error
    assert [(f.message_id, f.reason) for f in handed] == [(mid, "expired:deadline")]


def test_a_message_carried_into_quiet_hours_by_its_rate_says_it_now_waits_for_them(db_url):
    (cid,) = add_customers(1, timezone=NEW_YORK)
    (mid,) = add_messages([cid], channel="sms", status=MessageStatus.deferred, send_at=NIGHT,
                          reason_codes=["route:sms", "pace:sms"], attempts=1,
                          last_error="transient: 429 too many requests")

    dispatch_due(now=NIGHT, adapters={"sms": RecordingAdapter("sms")})

    row = messages([mid])[mid]
    assert row.status == MessageStatus.deferred and row.send_at == MORNING
    assert row.reason_codes == ["route:sms", "quiet_hours:sms"]  # the rate is no longer what it waits for
    assert row.attempts == 1 and row.last_error == "transient: 429 too many requests"


def test_quiet_hours_that_now_cover_the_whole_day_suppress_the_message(db_url):
    # The customer chose quiet hours 08:00-21:00 after the decision: with the SMS ones, no hour is left.
    (cid,) = add_customers(1, timezone=NEW_YORK)
    with session_scope() as session:
        session.add(ContactPreference(customer_id=cid, quiet_start="08:00", quiet_end="21:00"))
    (mid,) = add_messages([cid], channel="sms", send_at=DECIDED)
    handed = []

    dispatch_due(now=NIGHT, adapters={"sms": RecordingAdapter("sms")}, on_permanent=handed.extend)

    row = messages([mid])[mid]
    assert row.status == MessageStatus.suppressed and row.reason_codes == ["quiet_hours:always"]
    assert "which cover the whole day" in row.last_error
    assert [(f.message_id, f.reason) for f in handed] == [(mid, "quiet_hours:always")]
