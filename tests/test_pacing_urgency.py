"""Urgent work holds bulk work back: the mark in the database, bulk work's checkpoint, and a mark
that lapses or cannot be read never stopping anything."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.pacing import budget, urgency


def test_bulk_work_waits_while_urgent_work_is_marked_and_goes_on_when_it_is_done(db_url, monkeypatch):
    urgency.announce(seconds=60)
    events: list[str] = []
    polled = threading.Event()
    reads = 0
    real_read = budget.held_until

    def read(name, **kwargs):
        nonlocal reads
        reads += 1
        if reads >= 3:
            polled.set()
        return real_read(name, **kwargs)

    def bulk() -> None:
        urgency.yield_to_urgent_work(max_wait=60)
        events.append("bulk went on")

    monkeypatch.setattr(budget, "held_until", read)
    worker = threading.Thread(target=bulk)
    worker.start()
    assert polled.wait(10), "bulk work did not look at the mark"
    events.append("urgent work done")
    urgency.done()
    worker.join(10)
    assert events == ["urgent work done", "bulk went on"]
    urgency.yield_to_urgent_work(sleep=lambda _s: pytest.fail("nothing is held: no wait"))


def test_a_mark_that_is_not_renewed_lapses_and_a_later_mark_is_kept(db_url):
    urgency.announce(seconds=30)
    urgency.announce(seconds=5)  # a shorter announcement does not cut a longer one
    until = budget.held_until(urgency.URGENT_WORK)
    assert until > time.time() + 20

    clock = [until - 1.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    waited = urgency.yield_to_urgent_work(clock=lambda: clock[0], sleep=sleep)
    assert waited == pytest.approx(1.0)  # until the mark ran out, polling every POLL_SECONDS
    assert max(slept) <= urgency.POLL_SECONDS and len(slept) >= 10

    clock[0] = until - 1000.0
    waited = urgency.yield_to_urgent_work(max_wait=2.0, clock=lambda: clock[0], sleep=sleep)
    assert waited == pytest.approx(2.0)  # never longer than max_wait at one checkpoint


def test_a_database_that_cannot_answer_means_no_hold(caplog):
    url = "sqlite:////nonexistent/dir/orchestrator.db"
    urgency.announce(url=url)  # logged, not raised
    assert urgency.yield_to_urgent_work(url=url, max_wait=5, sleep=lambda _s: pytest.fail("waited")) >= 0
    assert "could not ask bulk work to wait" in caplog.text


def test_running_urgent_work_renews_its_mark_from_a_thread_and_clears_it_at_the_end(db_url):
    def changed_from(value: float) -> float:
        deadline = time.monotonic() + 10
        while (now := budget.held_until(urgency.URGENT_WORK)) == value and time.monotonic() < deadline:
            time.sleep(0.02)
        return now

    with urgency.holding(every=0.05):
        first = changed_from(0.0)  # marked by the thread, the block going on meanwhile
        renewed = changed_from(first)
        assert renewed > first > time.time()  # renewed while the block runs
    assert budget.held_until(urgency.URGENT_WORK) < time.time()  # cleared: bulk work goes on
