"""Reliability figures: each test records a one-line figure; the run prints them all at the end.

Pytest hides the output of passing tests, so the figures are collected here and shown in the
terminal summary (and appended to ``$ORCH_RELIABILITY_FIGURES`` when set, e.g. for a CI artifact).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

_FIGURES = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``figure("concurrency", "10000 customers, ...")`` records ``RELIABILITY concurrency: ...``."""

    def record(name: str, text: str) -> None:
        line = f"RELIABILITY {name}: {text}"
        print(line)
        figures = request.config.stash[_FIGURES]
        if line in figures:  # the same figure from the SQLite and the PostgreSQL run
            return
        figures.append(line)
        target = os.environ.get("ORCH_RELIABILITY_FIGURES")
        if target:
            with Path(target).open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    return record


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section("reliability figures")
        for line in figures:
            terminalreporter.write_line(line)
