"""Dispatch at the declared send rates: messages that must wait stay deferred with ``pace:<rate>``
and their expected time (``explain`` shows it), urgent messages go first, and three processes on
PostgreSQL together stay within the rate a fake provider enforces."""

from __future__ import annotations

import multiprocessing
import os
import time
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import update

from orchestrator.db import session_scope
from orchestrator.dispatch import run as dispatch_run
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.queue import claim_due
from orchestrator.models import Message, MessageStatus, utcnow
from orchestrator.policy.explain import explain_customer
from orchestrator.settings import REPO_ROOT, get_settings
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def use_rates(tmp_path, monkeypatch, rates: dict) -> None:
    data = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    data["rates"] = rates
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ORCH_POLICY_FILE", str(path))
    get_settings.cache_clear()


def test_messages_beyond_the_rate_wait_in_the_ledger_with_their_reason_and_time(sqlite_url, tmp_path,
                                                                                monkeypatch):
    use_rates(tmp_path, monkeypatch, {"sms": "2/s"})
    cids = add_customers(8)
    ids = add_messages(cids, channel="sms", topic="outage", priority=90)
    adapter = RecordingAdapter("sms")
    before = utcnow()

    report = dispatch_due(adapters={"sms": adapter}, pace_patience=0)

    rows = messages(ids)
    sent = [m for m in rows.values() if m.status == MessageStatus.sent]
    # Urgent traffic waits up to 10 s in-process for its slot: about 20 at 2/s, so all 8 went.
    assert len(sent) == 8 and report.total("sent") == 8

    marketing = add_messages(cids, channel="sms", topic="marketing", dedupe="promo", priority=10)
    report = dispatch_due(adapters={"sms": adapter}, pace_patience=0)
    rows = messages(marketing)
    sent = [m for m in rows.values() if m.status == MessageStatus.sent]
    waiting = sorted((m for m in rows.values() if m.status == MessageStatus.deferred),
                     key=lambda m: m.send_at)
    # Bulk traffic waits at most 2 s in-process (about 4 at 2/s); the rest waits in the ledger.
    assert 1 <= len(sent) <= 6 and len(waiting) == 8 - len(sent)
    assert report.total("sent") == len(sent) and report.total("deferred") == len(waiting)
    assert report.paced["pace:sms"] == len(waiting)
    assert all(m.reason_codes[-1] == "pace:sms" and m.attempts == 0 for m in waiting)
    # Expected times: one slot (0.5 s) apart, from when the lane is next free.
    gaps = [(b.send_at - a.send_at).total_seconds() for a, b in zip(waiting, waiting[1:], strict=False)]
    assert all(g == pytest.approx(0.5, abs=0.01) for g in gaps)
    assert waiting[0].send_at > before
    with session_scope() as s:
        [latest, *_] = explain_customer(s, waiting[-1].customer_id)
    assert latest.status == "deferred" and "pace:sms" in latest.reason_codes
    assert latest.send_at == waiting[-1].send_at

    # With patience, a dispatch claims what waited for its rate again when its slot comes.
    loyalty = add_messages(cids, channel="sms", topic="loyalty", dedupe="loyalty", priority=30)
    report = dispatch_due(adapters={"sms": adapter}, message_ids=loyalty, pace_patience=30)
    assert {m.status for m in messages(loyalty).values()} == {MessageStatus.sent}
    assert report.total("sent") == 8 and report.total("deferred") == 0 and report.paced["pace:sms"] > 0
    assert adapter.calls_per_message().most_common(1)[0][1] == 1


def test_urgent_messages_go_before_bulk_ones_competing_for_the_same_lane(sqlite_url, tmp_path, monkeypatch):
    use_rates(tmp_path, monkeypatch, {"email": "100/s"})
    cids = add_customers(30)
    promos = add_messages(cids, topic="marketing", template="promo", dedupe="promo", priority=10)
    outage = add_messages(cids, topic="outage", dedupe="outage", priority=90,
                          send_at=utcnow() + timedelta(seconds=1))  # reserved after the campaign
    adapter = RecordingAdapter("email", max_batch=10)

    dispatch_due(adapters={"email": adapter}, claim_size=40, now=utcnow() + timedelta(seconds=2))

    order = [m.message_id for m in adapter.sent]
    assert set(order[: len(outage)]) == set(outage)  # every outage message before any marketing one
    assert sorted(order[len(outage):]) == promos  # the campaign went on once the outage was out


def test_messages_that_wait_queue_behind_those_already_waiting_for_the_same_rate(sqlite_url, tmp_path,
                                                                                 monkeypatch):
    use_rates(tmp_path, monkeypatch, {"sms": "2/s"})
    cids = add_customers(8)
    first = add_messages(cids[:4], channel="sms", topic="loyalty", priority=30)
    then = add_messages(cids[4:], channel="sms", topic="loyalty", priority=30)
    adapter = RecordingAdapter("sms")

    # Two dispatches (two chunks of a campaign) that wait for no slot in-process.
    dispatch_due(adapters={"sms": adapter}, message_ids=first, pace_patience=0, pace_wait=0)
    dispatch_due(adapters={"sms": adapter}, message_ids=then, pace_patience=0, pace_wait=0)

    rows = messages(first + then)
    waiting = {mid: m.send_at for mid, m in rows.items() if m.status == MessageStatus.deferred}
    assert len(adapter.sent) == 1 and len(waiting) == 7  # the lane's burst of one went at once
    assert all(rows[mid].reason_codes[-1] == "pace:sms" for mid in waiting)
    # The second chunk's messages are expected after the first's, one slot (0.5 s) apart: no two
    # messages are promised the same slot.
    times = sorted(waiting.values())
    assert max(waiting[m] for m in first if m in waiting) < min(waiting[m] for m in then)
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert all(g == pytest.approx(0.5, abs=0.01) for g in gaps)


def test_a_slow_lane_does_not_hold_back_the_other_channels_of_its_batch(sqlite_url, tmp_path, monkeypatch):
    use_rates(tmp_path, monkeypatch, {"sms": "2/s"})
    cids = add_customers(24)
    # One claimed batch: SMS first in claim order (lower ids), then email, all of the same outage.
    texts = add_messages(cids[:8], channel="sms", topic="outage", priority=90)
    emails = add_messages(cids[8:], channel="email", topic="outage", priority=90)
    sms, email = RecordingAdapter("sms"), RecordingAdapter("email")
    handed: dict[str, float] = {}

    def timed(adapter):
        send = adapter.send

        def record(batch):
            handed.setdefault(adapter.channel, time.monotonic())
            return send(batch)

        adapter.send = record

    timed(sms)
    timed(email)
    started = time.monotonic()
    report = dispatch_due(adapters={"sms": sms, "email": email}, pace_patience=0)

    assert report.total("sent") == 24 and len(email.sent) == 16 and len(sms.sent) == 8
    # 8 SMS at 2/s take about 3.5 s in-process; the email lane went at once beside them.
    assert time.monotonic() - started >= 3.0
    assert handed["email"] - started < 1.0
    assert {m.status for m in messages(texts + emails).values()} == {MessageStatus.sent}


def test_phone_calls_wait_for_the_call_centre_to_open(sqlite_url, tmp_path, monkeypatch):
    now = utcnow()
    closed_today = [d for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    if d != ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[now.weekday()]]
    use_rates(tmp_path, monkeypatch, {"phone": {"capacity": "30/h", "business_hours": {
        "start": "09:00", "end": "17:00", "days": closed_today, "timezone": "UTC"}}})
    cids = add_customers(3)
    ids = add_messages(cids, channel="phone", topic="support", priority=60)
    adapter = RecordingAdapter("phone")

    report = dispatch_due(adapters={"phone": adapter}, pace_patience=0)

    assert adapter.sent == [] and report.paced["pace:phone"] == 3
    rows = sorted(messages(ids).values(), key=lambda m: m.send_at)
    opening = (now + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    assert rows[0].send_at == opening  # the shift's start tomorrow, not in the night
    assert (rows[1].send_at - rows[0].send_at).total_seconds() == pytest.approx(120, abs=0.5)  # 30 an hour
    assert all(m.status == MessageStatus.deferred and m.reason_codes[-1] == "pace:phone" for m in rows)


# --- three processes, one budget ------------------------------------------------------------------

RATE = 10


def _dispatcher(env: dict[str, str], start, done) -> None:
    os.environ.update(env)
    get_settings.cache_clear()
    start.wait()
    report = dispatch_due(claim_size=20, pace_patience=60)
    done.put(report.total("sent"))


@pytest.mark.postgres
@pytest.mark.slow
def test_three_processes_share_the_rate_a_provider_enforces(pg_url, tmp_path, monkeypatch, fake_twilio):
    use_rates(tmp_path, monkeypatch, {"sms": f"{RATE}/s"})
    fake_twilio.enforce_rate(RATE, burst=5)  # refuses only what is well beyond the rate
    cids = add_customers(60)
    ids = add_messages(cids, channel="sms", topic="outage", priority=90)
    env = {"ORCH_DATABASE_URL": pg_url, "ORCH_POLICY_FILE": os.environ["ORCH_POLICY_FILE"],
           "ORCH_TEMPLATES_DIR": os.environ["ORCH_TEMPLATES_DIR"],
           "ORCH_TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
           "ORCH_TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
           "ORCH_TWILIO_FROM_NUMBER": "+15557654321", "ORCH_TWILIO_BASE_URL": fake_twilio.url}
    spawn = multiprocessing.get_context("spawn")
    start, done = spawn.Barrier(3), spawn.Queue()
    workers = [spawn.Process(target=_dispatcher, args=(env, start, done)) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    sent = [done.get(timeout=5) for _ in workers]

    assert sum(sent) == 60 and sum(1 for n in sent if n) > 1  # the work really was shared
    assert {m.status for m in messages(ids).values()} == {MessageStatus.sent}
    assert fake_twilio.rate_limited == 0  # the provider never had to refuse one
    # Slots are 1/RATE apart; a request that reaches the provider late (a process's first call opens
    # its connection) shares its second with the next ones: that is the burst allowance, 0.3 s' worth.
    assert max(fake_twilio.per_second_counts()) <= RATE + 3
    times = sorted(r.received_at for r in fake_twilio.accepted())
    assert (len(times) - 1) / (times[-1] - times[0]) <= RATE * 1.05  # and on average, the rate


def test_a_provider_that_answers_429_slows_the_lane_and_nothing_is_lost(sqlite_url, tmp_path, monkeypatch,
                                                                         fake_twilio):
    from orchestrator.pacing.budget import lane_state

    use_rates(tmp_path, monkeypatch, {"sms": "40/s"})  # more than the provider takes
    fake_twilio.enforce_rate(8, burst=0)
    for key, value in {"ORCH_TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
                       "ORCH_TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
                       "ORCH_TWILIO_FROM_NUMBER": "+15557654321",
                       "ORCH_TWILIO_BASE_URL": fake_twilio.url}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    cids = add_customers(40)
    ids = add_messages(cids, channel="sms", topic="outage", priority=90)

    report = dispatch_due(pace_patience=60)

    assert {m.status for m in messages(ids).values()} == {MessageStatus.sent} and report.total("sent") == 40
    lane = lane_state(["sms"])["sms"]
    assert fake_twilio.rate_limited > 0 and lane["rate_limited"] > 0
    accepted = {r.message_id for r in fake_twilio.accepted()}
    assert len(accepted) == 40 and len(fake_twilio.accepted()) == 40


def test_a_dispatch_stops_following_messages_another_worker_took_or_a_cancel_ended(sqlite_url, tmp_path,
                                                                                monkeypatch):
    use_rates(tmp_path, monkeypatch, {"sms": "2/s"})
    cids = add_customers(3)
    ids = add_messages(cids, channel="sms", topic="loyalty", priority=30)
    adapter = RecordingAdapter("sms")
    claims = []

    def counted_claim(**kwargs):
        claims.append(kwargs)
        return claim_due(**kwargs)

    monkeypatch.setattr(dispatch_run, "claim_due", counted_claim)

    def elsewhere(report) -> None:
        # The first batch sent one message (the lane's burst) and left two waiting for their rate;
        # meanwhile another worker sends one of them and an operator cancels the other.
        waiting = sorted(report.waiting)
        if len(waiting) == 2:
            with session_scope() as s:
                s.execute(update(Message).where(Message.id == waiting[0])
                          .values(status=MessageStatus.sent, sent_at=utcnow()))
                s.execute(update(Message).where(Message.id == waiting[1])
                          .values(status=MessageStatus.cancelled))

    report = dispatch_due(adapters={"sms": adapter}, message_ids=ids, pace_wait=0, pace_patience=5,
                          on_progress=elsewhere)

    assert len(adapter.sent) == 1
    assert report.total("sent") == 1
    assert report.total("deferred") == 0 and not report.left_waiting  # neither is this dispatch's to report
    # It looked for them once more, found them gone and stopped (it used to ask again and again
    # until its patience ran out).
    assert len(claims) <= 3, len(claims)
