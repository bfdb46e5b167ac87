"""Pipelines run with the garbage collector looking less often, and put Python's setting back;
what a command loads for good is loaded without it and frozen."""

from __future__ import annotations

import gc
import importlib
import sys
import threading

import pytest

from flows.garbage_collection import collecting_less_often, loading_for_good


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


@pytest.fixture
def new_module(tmp_path, monkeypatch):
    """A module no one has imported yet: ``import loaded_for_good_1`` loads it (once)."""
    (tmp_path / "loaded_for_good_1.py").write_text("TABLE = {str(i): [i] for i in range(1000)}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "loaded_for_good_1"
    sys.modules.pop("loaded_for_good_1", None)
    gc.unfreeze()


def test_loading_runs_without_the_collector_and_freezes_what_it_loaded(new_module):
    frozen_before = gc.get_freeze_count()
    with loading_for_good():
        enabled_inside = gc.isenabled()
        module = importlib.import_module(new_module)
    assert not enabled_inside and gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(module.TABLE)


def test_loading_nothing_new_freezes_nothing(new_module):
    importlib.import_module(new_module)
    frozen_before = gc.get_freeze_count()
    with loading_for_good():
        importlib.import_module(new_module)
    assert gc.get_freeze_count() == frozen_before and gc.isenabled()


def test_a_collector_switched_off_before_stays_off_and_an_error_turns_it_back_on():
    gc.disable()
    try:
        with loading_for_good():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ImportError), loading_for_good():
        import no_such_module_here  # noqa: F401
    assert gc.isenabled()
