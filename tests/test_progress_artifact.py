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
