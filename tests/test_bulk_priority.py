"""Bulk work below the CPU priority of urgent work: the thread and the threads it starts, then back."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from flows.bulk_priority import yielding_cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_block_and_the_threads_it_starts_run_lower_and_the_caller_gets_its_priority_back():
    before = _niceness()
    started: list[int] = []
    with yielding_cpu(5):
        inside = _niceness()
        worker = threading.Thread(target=lambda: started.append(_niceness()))
        worker.start()
        worker.join()
    assert (inside, started) == (min(19, before + 5), [min(19, before + 5)])
    assert _niceness() == before


def test_where_priorities_cannot_be_changed_the_work_runs_as_it_is(monkeypatch):
    def refuse(*_args):
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "setpriority", refuse)
    ran = []
    with yielding_cpu(10):
        ran.append(True)
    assert ran == [True]
