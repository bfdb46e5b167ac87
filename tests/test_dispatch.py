"""Dispatch: due messages are claimed, rendered, sent once, and every provider verdict is recorded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from channels.base import ConfigurationError, Permanent, PermanentReason, Transient
from orchestrator.consent import current_consent, record_consent, suppress_address
from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.queue import claim_due
from orchestrator.ledger.reconcile import reconcile_stuck, resolve_reconcile
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.models import Customer, MessageStatus, Suppression, utcnow
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def test_due_messages_are_sent_once_and_recorded(db_url):
    now = utcnow()
    cids = add_customers(3)
    email_ids = add_messages(cids)
    due_ids = add_messages(cids[:1], status=MessageStatus.deferred, send_at=now - timedelta(minutes=5),
                           dedupe="due")
    later_ids = add_messages(cids[:1], status=MessageStatus.deferred, send_at=now + timedelta(hours=1),
                             dedupe="later")
    sms_ids = add_messages(cids[1:2], channel="sms", dedupe="sms")
    email, sms = RecordingAdapter("email"), RecordingAdapter("sms")

    report = dispatch_due(now=now, adapters={"email": email, "sms": sms})

    rows = messages()
    for mid in [*email_ids, *due_ids, *sms_ids]:
        assert rows[mid].status == MessageStatus.sent
        assert rows[mid].provider == "recorder" and rows[mid].provider_message_id == f"rec-{mid}"
        assert rows[mid].sent_at == now and rows[mid].attempts == 1
    assert rows[later_ids[0]].status == MessageStatus.deferred and rows[later_ids[0]].attempts == 0
    assert report.rows() == [
        {"channel": "email", "sent": 4, "deferred": 0, "failed": 0, "suppressed": 0, "reconcile": 0},
        {"channel": "sms", "sent": 1, "deferred": 0, "failed": 0, "suppressed": 0, "reconcile": 0},
    ]
    first = next(m for m in email.sent if m.message_id == email_ids[0])
    assert first.to == "ada0@example.com" and first.subject == "An update for Ada"
    assert first.body == "Hello Ada, your order shipped" and first.html.startswith("<p>Hello Ada")
    assert [m.to for m in sms.sent] == ["+14155550001"]

    again = dispatch_due(now=now, adapters={"email": email, "sms": sms})
    assert again.processed == 0
    assert max(email.calls_per_message().values()) == 1


def test_messages_are_sending_with_the_attempt_counted_before_the_provider_is_called(db_url):
    ids = add_messages(add_customers(2))
    seen = {}

    def look_at_the_ledger(message):
        seen[message.message_id] = messages([message.message_id])[message.message_id]
        return None

    dispatch_due(adapters={"email": RecordingAdapter(answer=look_at_the_ledger)})
    assert {mid: (m.status, m.attempts) for mid, m in seen.items()} == {
        mid: (MessageStatus.sending, 1) for mid in ids
    }


def test_transient_errors_defer_with_retry_after_honoured_then_send(db_url):
    now = utcnow()
    slow, quick = add_messages(add_customers(2))
    adapter = RecordingAdapter()
    adapter.answers = {slow: Transient("429 rate limited", retry_after=900), quick: Transient("503")}

    report = dispatch_due(now=now, adapters={"email": adapter}, retry=RetryPolicy(base_seconds=60))

    rows = messages()
    assert rows[slow].status == MessageStatus.deferred and rows[slow].send_at == now + timedelta(seconds=900)
    assert rows[quick].status == MessageStatus.deferred and rows[quick].send_at == now + timedelta(seconds=60)
    assert rows[slow].last_error == "transient: 429 rate limited"
    assert report.total("deferred") == 2 and report.failures == []

    adapter.answers = {}
    later = dispatch_due(now=now + timedelta(seconds=61), adapters={"email": adapter})
    rows = messages()
    assert later.total("sent") == 1
    assert rows[quick].status == MessageStatus.sent and rows[quick].attempts == 2
    assert rows[slow].status == MessageStatus.deferred


def test_a_provider_that_stays_down_ends_in_failed_after_max_attempts_or_the_deadline(db_url):
    now = utcnow()
    cids = add_customers(2)
    stubborn = add_messages(cids[:1])[0]
    urgent = add_messages(cids[1:], deadline=now + timedelta(seconds=30), dedupe="urgent")[0]
    down = RecordingAdapter(answer=lambda m: Transient("503 service unavailable"))
    policy = RetryPolicy(base_seconds=60, max_attempts=3)  # retries at +1 min, then +2 min

    for minute in range(4):
        dispatch_due(now=now + timedelta(minutes=minute), adapters={"email": down}, retry=policy)

    rows = messages()
    assert rows[stubborn].status == MessageStatus.failed and rows[stubborn].attempts == 3
    assert "gave_up:attempts" in rows[stubborn].reason_codes
    assert rows[urgent].status == MessageStatus.failed and rows[urgent].attempts == 1
    assert rows[urgent].last_error.startswith("gave_up:deadline")
    assert down.calls_per_message() == {stubborn: 3, urgent: 1}


def test_permanent_errors_fail_with_their_reason_and_are_handed_to_the_fallback_hook(db_url):
    bad, good = add_messages(add_customers(2))
    adapter = RecordingAdapter()
    adapter.answers = {bad: Permanent(PermanentReason.invalid_address, "The email address ada0@example.com "
                                                                       "does not exist")}
    handed = []

    report = dispatch_due(adapters={"email": adapter}, on_permanent=handed.extend)

    rows = messages()
    assert rows[bad].status == MessageStatus.failed and rows[good].status == MessageStatus.sent
    assert rows[bad].reason_codes[-1] == "permanent:invalid_address"
    assert "ada0@example.com" not in rows[bad].last_error  # no personal data in the ledger's error text
    assert [(f.message_id, f.reason, f.status) for f in handed] == [
        (bad, "permanent:invalid_address", "failed")
    ]
    assert report.failures == handed
    with session_scope() as s:
        suppressed = s.exec(select(Suppression)).all()
    assert [(x.channel, x.address, x.source) for x in suppressed] == [
        ("email", "ada0@example.com", "provider:recorder")
    ]


def test_provider_opt_out_records_consent_and_stops_later_messages(db_url):
    cid = add_customers(1)[0]
    first = add_messages([cid], channel="sms")[0]
    sms = RecordingAdapter("sms")
    sms.answers = {first: Permanent(PermanentReason.unsubscribed, "21610 recipient opted out")}

    dispatch_due(adapters={"sms": sms})

    with session_scope() as s:
        consent = current_consent(s, [cid])
    assert consent == {(cid, "sms", "*"): "opted_out"}
    later = add_messages([cid], channel="sms", dedupe="later")[0]
    report = dispatch_due(adapters={"sms": sms})
    assert messages([later])[later].status == MessageStatus.suppressed
    assert report.failures[0].reason == "consent:opted_out"
    assert sms.calls_per_message() == {first: 1}


def test_what_cannot_be_sent_is_settled_without_a_provider_call(db_url):
    now = utcnow()
    ok, no_phone, opted_out, suppressed = add_customers(4)
    with session_scope() as s:
        s.get(Customer, no_phone).phone = None
        record_consent(s, opted_out, "*", "transactional", "opted_out", "preference_centre")
        suppress_address(s, "sms", "+14155550003", "bounce", "test")
    ids = add_messages([ok, no_phone, opted_out, suppressed], channel="sms")
    broken = add_messages([ok], channel="sms", data={}, dedupe="broken")[0]  # the template's fact is missing
    late = add_messages([ok], channel="sms", dedupe="late", deadline=now - timedelta(minutes=1))[0]
    sms = RecordingAdapter("sms")

    report = dispatch_due(now=now, adapters={"sms": sms})

    rows = messages()
    assert [(rows[i].status, rows[i].reason_codes[-1:]) for i in [*ids[1:], broken, late]] == [
        (MessageStatus.failed, ["no_address:sms"]),
        (MessageStatus.suppressed, ["consent:opted_out"]),
        (MessageStatus.suppressed, ["suppressed:sms"]),
        (MessageStatus.failed, ["render_error"]),
        (MessageStatus.failed, ["expired:deadline"]),
    ]
    assert "what" in rows[broken].last_error  # the render error names the missing fact
    assert list(sms.calls_per_message()) == [ids[0]]
    assert report.total("sent") == 1 and len(report.failures) == 5


def test_marketing_email_carries_its_unsubscribe_link(db_url):
    mid = add_messages(add_customers(1), template="promo")[0]
    adapter = RecordingAdapter()
    dispatch_due(adapters={"email": adapter})
    (sent,) = adapter.sent
    assert sent.message_id == mid and sent.marketing
    assert sent.unsubscribe_url and "/unsubscribe/" in sent.unsubscribe_url
    assert sent.categories == ["marketing", "promo"]


def test_batches_follow_the_adapter_limit_and_progress_is_reported(db_url):
    add_messages(add_customers(25))
    adapter = RecordingAdapter(max_batch=10)
    progress = []
    report = dispatch_due(adapters={"email": adapter}, on_progress=lambda r: progress.append(r.processed),
                          claim_size=20)
    assert adapter.batches == [10, 10, 5]
    assert progress == [10, 20, 25]
    assert report.total("sent") == 25


def test_filters_and_limit_choose_what_is_dispatched(db_url):
    cids = add_customers(4)
    email_ids = add_messages(cids)
    sms_ids = add_messages(cids, channel="sms", dedupe="s")
    adapters = {"email": RecordingAdapter("email"), "sms": RecordingAdapter("sms")}

    assert dispatch_due(message_ids=email_ids[:2], adapters=adapters).total("sent") == 2
    assert dispatch_due(channels=["sms"], limit=3, adapters=adapters).total("sent") == 3
    rows = messages()
    assert [rows[i].status for i in email_ids] == ["sent", "sent", "planned", "planned"]
    assert sorted(rows[i].status for i in sms_ids) == ["planned", "sent", "sent", "sent"]


def test_an_adapter_that_breaks_mid_call_leaves_the_batch_to_reconcile_never_resent(db_url):
    ids = add_messages(add_customers(3))
    adapter = RecordingAdapter(max_batch=2)
    adapter.answers = {ids[0]: ConnectionResetError("peer reset")}

    report = dispatch_due(adapters={"email": adapter})

    rows = messages()
    assert [rows[i].status for i in ids] == ["reconcile", "reconcile", "deferred"]
    assert rows[ids[0]].last_error.startswith("reconcile:adapter_error")
    assert rows[ids[2]].attempts == 0  # never reached the provider: the attempt is given back
    assert sorted(report.reconcile) == ids[:2]

    adapter.answers = {}
    dispatch_due(now=utcnow() + timedelta(hours=2), adapters={"email": adapter})
    assert adapter.calls_per_message() == {ids[0]: 1, ids[1]: 1, ids[2]: 1}


def test_a_configuration_error_defers_everything_and_is_reported(db_url):
    ids = add_messages(add_customers(2))
    adapter = RecordingAdapter(answer=lambda m: ConfigurationError("ORCH_SENDGRID_API_KEY is not set"))

    report = dispatch_due(adapters={"email": adapter})

    rows = messages()
    assert {rows[i].status for i in ids} == {MessageStatus.deferred}
    assert {rows[i].attempts for i in ids} == {0}
    assert rows[ids[0]].last_error == "not_sent: configuration: ORCH_SENDGRID_API_KEY is not set"
    assert report.configuration_errors == {"email": "configuration: ORCH_SENDGRID_API_KEY is not set"}


def test_refused_credentials_are_a_configuration_problem_not_a_transient_error(db_url):
    now = utcnow()
    ids = add_messages(add_customers(5))
    refusing = RecordingAdapter(max_batch=2,
                                answer=lambda m: Permanent(PermanentReason.unauthorized, "invalid API key"))
    policy = RetryPolicy(base_seconds=60, max_attempts=2)

    for minute in range(0, 12, 2):  # every time the messages are due again, the key is still wrong
        report = dispatch_due(now=now + timedelta(minutes=minute), adapters={"email": refusing}, retry=policy)
        assert report.configuration_errors == {"email": "configuration: unauthorized: invalid API key"}
        assert report.failures == []

    rows = messages()
    assert {rows[i].status for i in ids} == {MessageStatus.deferred}  # waiting for the fix, never given up
    assert {rows[i].attempts for i in ids} == {0}
    assert rows[ids[0]].last_error == "not_sent: configuration: unauthorized: invalid API key"
    assert refusing.batches == [2] * 6  # one refused batch per run: the rest of the channel waits

    fixed = RecordingAdapter()
    dispatch_due(now=now + timedelta(minutes=15), adapters={"email": fixed}, retry=policy)
    assert {messages()[i].status for i in ids} == {MessageStatus.sent}
    assert fixed.calls_per_message() == dict.fromkeys(ids, 1)


def test_messages_stuck_in_sending_are_flagged_for_reconciliation_not_resent(db_url):
    now = utcnow()
    ids = add_messages(add_customers(2))
    claimed = claim_due(now=now, limit=10)  # then the worker dies before calling the provider back
    assert [m.id for m in claimed] == ids

    assert reconcile_stuck(older_than=timedelta(minutes=10), now=now + timedelta(minutes=5)) == []
    flagged = reconcile_stuck(older_than=timedelta(minutes=10), now=now + timedelta(minutes=11))

    assert flagged == ids
    rows = messages()
    assert {rows[i].status for i in ids} == {MessageStatus.reconcile}
    assert rows[ids[0]].reason_codes == ["reconcile:lease_expired"]
    assert "check the provider" in rows[ids[0]].last_error
    adapter = RecordingAdapter()
    assert dispatch_due(now=now + timedelta(hours=1), adapters={"email": adapter}).processed == 0
    assert adapter.sent == []


class _ProviderLedger:
    """A provider that can say, by our message id, whether it received a message."""

    def __init__(self, answers):
        self.answers = answers

    def find_sent(self, message_ids):
        return {mid: self.answers[mid] for mid in message_ids if mid in self.answers}


def test_a_provider_lookup_settles_reconcile_messages_it_can_answer_for(db_url):
    now = utcnow()
    accepted, never_received, unknown = add_messages(add_customers(3), channel="sms")
    claim_due(now=now, limit=10)
    reconcile_stuck(older_than=timedelta(minutes=10), now=now + timedelta(minutes=11))
    lookup = _ProviderLedger({accepted: "SM123", never_received: None})

    counts = resolve_reconcile({"sms": lookup}, now=now + timedelta(minutes=12))

    assert counts == {"sent": 1, "requeued": 1, "unknown": 1}
    rows = messages()
    assert (rows[accepted].status, rows[accepted].provider_message_id) == (MessageStatus.sent, "SM123")
    assert rows[never_received].status == MessageStatus.deferred
    assert rows[unknown].status == MessageStatus.reconcile
    adapter = RecordingAdapter("sms")
    dispatch_due(now=now + timedelta(minutes=13), adapters={"sms": adapter})
    assert list(adapter.calls_per_message()) == [never_received]  # only what the provider never got


def test_an_error_mid_run_puts_what_never_reached_the_provider_back_in_the_queue(db_url):
    ids = add_messages(add_customers(25))
    adapter = RecordingAdapter(max_batch=10)

    def crash(_report):
        raise RuntimeError("progress sink is down")

    with pytest.raises(RuntimeError, match="progress sink"):
        dispatch_due(adapters={"email": adapter}, on_progress=crash)

    rows = messages()
    assert sorted(rows[i].status for i in ids) == ["deferred"] * 15 + ["sent"] * 10
    assert {rows[i].attempts for i in ids if rows[i].status == "deferred"} == {0}
    dispatch_due(now=utcnow() + timedelta(hours=1), adapters={"email": adapter})
    assert adapter.calls_per_message() == {i: 1 for i in ids}


def test_do_not_contact_set_after_the_decision_stops_all_but_required_notices(db_url):
    from orchestrator.consent import update_preferences

    (customer,) = add_customers(1)
    waiting_offer = add_messages([customer], template="promo", status=MessageStatus.deferred,
                                 send_at=utcnow() - timedelta(minutes=1))[0]
    security = add_messages([customer], topic="security", dedupe="sec")[0]
    with session_scope() as s:
        update_preferences(s, customer, "preference_centre", do_not_contact=True)
    email = RecordingAdapter("email")

    dispatch_due(adapters={"email": email})

    rows = messages()
    offer = rows[waiting_offer]
    assert (offer.status, offer.reason_codes[-1]) == ("suppressed", "do_not_contact")
    assert list(email.calls_per_message()) == [security]
