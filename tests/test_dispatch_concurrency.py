"""Several dispatchers share one queue and never send a message twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from orchestrator.dispatch.report import DispatchReport
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import MessageStatus
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter

WORKERS = 4


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def test_concurrent_dispatchers_send_each_message_exactly_once(db_url):
    cids = add_customers(150)
    ids = add_messages(cids) + add_messages(cids, channel="sms", dedupe="sms")
    start = threading.Barrier(WORKERS)

    def slow_provider(_message):
        time.sleep(0.0005)  # widens the window in which another worker could grab the same rows
        return None

    adapters = {ch: RecordingAdapter(ch, max_batch=10, answer=slow_provider) for ch in ("email", "sms")}

    def worker(_n: int) -> DispatchReport:
        start.wait()
        return dispatch_due(adapters=adapters, claim_size=15)

    with ThreadPoolExecutor(WORKERS) as pool:
        reports = list(pool.map(worker, range(WORKERS)))

    calls = adapters["email"].calls_per_message() + adapters["sms"].calls_per_message()
    assert sorted(calls) == sorted(ids)
    assert set(calls.values()) == {1}
    assert sum(r.total("sent") for r in reports) == len(ids)
    assert sum(1 for r in reports if r.processed) > 1  # the work really was shared
    rows = messages(ids)
    assert {m.status for m in rows.values()} == {MessageStatus.sent}
    assert {m.attempts for m in rows.values()} == {1}
