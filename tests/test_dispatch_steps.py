"""Dispatch's steps one at a time: claim, compose, send and record each do their part alone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from channels.base import ConfigurationError, Permanent, PermanentReason, ResultStatus, SendResult
from orchestrator.consent import current_consent, record_consent
from orchestrator.contact_points import record_inbound, set_contact_point
from orchestrator.db import session_scope
from orchestrator.dispatch.compose import ReadyMessage, compose
from orchestrator.dispatch.record import record
from orchestrator.dispatch.send import changes_for_results, send_channel
from orchestrator.ledger.changes import LedgerChange, released
from orchestrator.ledger.queue import ClaimedMessage, claim_due, count_due
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.models import MessageStatus, utcnow
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter
from tests.support.statements import reading, recorded_statements


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def _claim_all() -> dict[int, ClaimedMessage]:
    return {m.id: m for m in claim_due(now=utcnow(), limit=100)}


def test_claim_takes_due_rows_once_and_counts_the_attempt(sqlite_url):
    now = utcnow()
    due = add_messages(add_customers(2))
    later = add_messages(add_customers(1), status=MessageStatus.deferred, send_at=now + timedelta(hours=1),
                         dedupe="later")
    assert count_due(now=now) == 2

    claimed = claim_due(now=now, limit=10)

    assert sorted(m.id for m in claimed) == due and {m.attempts for m in claimed} == {1}
    assert claim_due(now=now, limit=10) == []  # already sending
    rows = messages()
    assert {rows[i].status for i in due} == {MessageStatus.sending}
    assert rows[later[0]].status == MessageStatus.deferred


def test_compose_renders_what_can_go_and_settles_the_rest_without_writing(sqlite_url):
    now = utcnow()
    cids = add_customers(3)
    ok = add_messages(cids[:1])[0]
    expired = add_messages(cids[1:2], deadline=now - timedelta(minutes=1), dedupe="late")[0]
    opted_out = add_messages(cids[2:], dedupe="opted-out")[0]
    with session_scope() as s:
        record_consent(s, cids[2], "email", "*", "opted_out", "test")

    composed = compose(_claim_all(), now, required_topics=set())

    assert [r.message.id for r in composed.ready] == [ok]
    assert composed.ready[0].address == "ada0@example.com" and composed.ready[0].outbound.body
    assert {c.message_id: c.reason for c in composed.settled} == {
        expired: "expired:deadline", opted_out: "consent:opted_out"}
    assert {m.status for m in messages().values()} == {MessageStatus.sending}  # nothing recorded yet



def test_compose_reads_plug_in_addresses_and_reply_windows_in_one_query(db_url, tmp_path):
    """WhatsApp addresses and when each customer last wrote (the reply window) come from one
    contact-point query per batch; a batch on built-in channels alone makes none."""
    templates = tmp_path / "templates" / "messages" / "notice"
    meta = templates / "message.yaml"
    meta.write_text(meta.read_text().replace("phone]", "phone, whatsapp]"), encoding="utf-8")
    (templates / "professional" / "whatsapp.txt").write_text("Hi {{ customer.first_name }}: {{ data.what }}")
    now = utcnow()
    wrote, silent, by_email = add_customers(3)
    with session_scope() as s:
        for cid, number in ((wrote, "whatsapp:+14155550101"), (silent, "whatsapp:+14155550102")):
            set_contact_point(s, cid, "whatsapp", number, "import")
            record_consent(s, cid, "whatsapp", "*", "opted_in", "test")
    with session_scope() as s:
        record_inbound(s, "whatsapp", "whatsapp:+14155550101", wrote_at := now - timedelta(hours=1))
    add_messages([wrote, silent], channel="whatsapp", dedupe="wa")
    add_messages([by_email], dedupe="mail")

    with recorded_statements() as statements:
        composed = compose(_claim_all(), now, required_topics=set())

    assert len(reading("contact_point", statements)) == 1
    ready = {r.message.customer_id: r.outbound for r in composed.ready}
    assert composed.settled == [] and set(ready) == {wrote, silent, by_email}
    assert {cid: (o.channel, o.to) for cid, o in ready.items()} == {
        wrote: ("whatsapp", "whatsapp:+14155550101"), silent: ("whatsapp", "whatsapp:+14155550102"),
        by_email: ("email", "ada2@example.com")}
    assert ready[wrote].last_inbound_at == wrote_at
    assert ready[silent].last_inbound_at is None and ready[by_email].last_inbound_at is None

    add_messages([by_email], channel="sms", dedupe="text")
    with recorded_statements() as statements:
        [texted] = compose(_claim_all(), now, required_topics=set()).ready
    assert texted.address == "+14155550002" and reading("contact_point", statements) == []


class _Recorder:
    def __init__(self) -> None:
        self.recorded: list[LedgerChange] = []
        self.released: list[tuple[str, list[int], str, bool]] = []

    def record(self, changes: list[LedgerChange], sent: list[ReadyMessage]) -> None:
        self.recorded.extend(changes)

    def release(self, channel: str, unsent: list[ClaimedMessage], why: str, *, configuration: bool = True
                ) -> None:
        self.released.append((channel, [m.id for m in unsent], why, configuration))


def _ready(n: int) -> list[ReadyMessage]:
    add_messages(add_customers(n))
    claimed = _claim_all()
    return compose(claimed, utcnow(), required_topics=set()).ready


def test_send_stops_a_channel_whose_credentials_are_refused(sqlite_url):
    items = _ready(5)
    refused = Permanent(PermanentReason.unauthorized, "bad key")
    adapter = RecordingAdapter(max_batch=2, answer=lambda m: refused)
    recorder, handed = _Recorder(), set()

    send_channel("email", items, adapter_for=lambda ch: adapter, recorder=recorder, clock=utcnow,
                 retry=RetryPolicy(), handed=handed)

    ids = [i.message.id for i in items]
    assert adapter.batches == [2] and handed == set(ids[:2])
    assert [(c.message_id, c.status, c.attempts_delta) for c in recorder.recorded] == [
        (ids[0], MessageStatus.deferred, -1), (ids[1], MessageStatus.deferred, -1)]
    assert recorder.released == [("email", ids[2:], "configuration: unauthorized: bad key", True)]


def test_send_releases_everything_when_the_adapter_is_not_configured(sqlite_url):
    items = _ready(3)
    recorder = _Recorder()

    def missing(channel: str) -> RecordingAdapter:
        raise ConfigurationError("no key")

    send_channel("email", items, adapter_for=missing, recorder=recorder, clock=utcnow, retry=RetryPolicy(),
                 handed=set())

    assert recorder.recorded == []
    assert recorder.released == [("email", [i.message.id for i in items], "configuration: no key", True)]


def test_a_message_the_adapter_gave_no_answer_for_is_left_to_reconcile(sqlite_url):
    first, second = _ready(2)
    answered = SendResult(first.message.id, ResultStatus.accepted, "recorder", provider_message_id="p-1")

    changes = changes_for_results([first, second], [answered], utcnow(), RetryPolicy())

    assert [(c.status, c.reason) for c in changes] == [
        (MessageStatus.sent, None), (MessageStatus.reconcile, "reconcile:no_result")]


def test_record_writes_changes_and_the_customers_verdicts_in_one_go(sqlite_url):
    now = utcnow()
    items = _ready(2)
    claimed = {i.message.id: i.message for i in items}
    gone, waiting = items
    changes = [
        LedgerChange(gone.message.id, MessageStatus.failed, reason="permanent:unsubscribed",
                     provider="recorder"),
        released(waiting.message.id, "not yet", attempts=waiting.message.attempts, deadline=None, now=now,
                 retry=RetryPolicy()),
    ]

    record(claimed, changes, [gone], now)

    rows = messages()
    assert rows[gone.message.id].status == MessageStatus.failed
    assert rows[gone.message.id].reason_codes[-1] == "permanent:unsubscribed"
    assert (rows[waiting.message.id].status, rows[waiting.message.id].attempts) == (MessageStatus.deferred, 0)
    with session_scope() as s:
        consent = current_consent(s, [gone.message.customer_id])
    assert consent == {(gone.message.customer_id, "email", "*"): "opted_out"}


def test_record_refuses_a_time_without_its_zone_and_writes_nothing(sqlite_url):
    """Outcomes go to the driver without SQLAlchemy's types: a naive time is still refused (it
    would be read back as UTC, hours off), and the batch's transaction writes nothing."""
    items = _ready(2)
    claimed = {i.message.id: i.message for i in items}
    first, second = items
    naive = utcnow().replace(tzinfo=None) + timedelta(minutes=5)
    changes = [
        LedgerChange(first.message.id, MessageStatus.sent, provider="recorder", provider_message_id="p1"),
        LedgerChange(second.message.id, MessageStatus.deferred, reason="transient", send_at=naive),
    ]

    with pytest.raises(ValueError, match="timezone-aware"):
        record(claimed, changes, [], utcnow())

    assert {row.status for row in messages().values()} == {MessageStatus.sending}
