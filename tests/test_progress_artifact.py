"""A run's progress artifact follows the work without a Prefect API call per chunk."""

from __future__ import annotations

from types import SimpleNamespace
from uuid import uuid4

import flows.common as common


def test_progress_updates_the_artifact_at_most_once_per_interval_and_always_at_the_end(monkeypatch):
    sent: list[float] = []
    monkeypatch.setattr(common, "update_progress_artifact",
                        lambda artifact_id, progress: sent.append(progress))
    clock = iter([0.0, 0.1, 0.2, 0.3, 1.5, 1.6]).__next__
    monkeypatch.setattr(common, "time", SimpleNamespace(monotonic=clock))
    progress = common.Progress("p", 100)
    progress.artifact_id = uuid4()  # as inside a run

    for _ in range(5):
        progress.advance(10)  # at 0.0 (the first), 0.1-0.3 (too soon), 1.5 (a second later)
    assert sent == [10.0, 50.0]
    progress.finish()
    assert sent == [10.0, 50.0, 100.0] and progress.done == 100


def test_a_total_still_being_counted_shows_no_progress_until_it_is_known(monkeypatch):
    from concurrent.futures import Future

    sent: list[float] = []
    monkeypatch.setattr(common, "update_progress_artifact",
                        lambda artifact_id, progress: sent.append(progress))
    counted: Future[int] = Future()
    progress = common.Progress("p", counted)
    progress.artifact_id = uuid4()

    progress.update(10, now=True)
    assert progress.total is None and sent == [0.0]
    counted.set_result(40)
    progress.update(20, now=True)
    assert progress.total == 40 and sent == [0.0, 50.0]
    progress.finish()
    assert sent[-1] == 100.0


def test_a_count_that_failed_leaves_progress_at_zero_until_the_work_is_finished():
    from concurrent.futures import Future

    counted: Future[int] = Future()
    counted.set_exception(RuntimeError("database unavailable"))
    progress = common.Progress("p", counted)
    progress.advance(5)
    assert progress.percent == 0.0
    progress.finish()
    assert progress.percent == 100.0
