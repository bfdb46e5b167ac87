"""Pipelines run with the garbage collector looking less often, and put Python's setting back."""

from __future__ import annotations

import gc
import threading

import pytest

from flows.garbage_collection import collecting_less_often


@pytest.fixture(autouse=True)
def default_thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_the_block_runs_with_the_larger_threshold_and_the_old_one_comes_back():
    with collecting_less_often(50_000):
        inside = gc.get_threshold()
    assert inside == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_zero_or_a_smaller_threshold_leaves_pythons_setting_alone():
    with collecting_less_often(0):
        assert gc.get_threshold() == (700, 10, 10)
    gc.set_threshold(100_000, 10, 10)
    with collecting_less_often(50_000):
        assert gc.get_threshold() == (100_000, 10, 10)
    assert gc.get_threshold() == (100_000, 10, 10)


def test_pipelines_side_by_side_share_the_setting_until_the_last_one_ends():
    other_inside, other_may_end, other_ended = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def other_pipeline() -> None:
        with collecting_less_often(50_000):
            other_inside.set()
            other_may_end.wait(10)
        other_ended.set()

    with collecting_less_often(50_000):
        worker = threading.Thread(target=other_pipeline)
        worker.start()
        assert other_inside.wait(10)
    seen.append(gc.get_threshold())  # this one ended, the other still runs
    other_may_end.set()
    assert other_ended.wait(10)
    worker.join()
    seen.append(gc.get_threshold())
    assert seen == [(50_000, 10, 10), (700, 10, 10)]


def test_an_error_in_the_block_still_puts_the_setting_back():
    with pytest.raises(RuntimeError), collecting_less_often(50_000):
        raise RuntimeError("chunk failed")
    assert gc.get_threshold() == (700, 10, 10)
