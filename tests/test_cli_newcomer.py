"""What a newcomer meets first: a database that is not there, and the --help of every command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ORCHESTRATOR, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80", **env})


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/orchestrator",  # nothing listens there
    "postgresql://postgres@127.0.0.1:5432/no_such_database_here",
    "sqlite:////no/such/directory/orchestrator.db",
])
def test_init_against_a_missing_or_unreachable_database_says_so_in_one_line(url):
    result = _run("init", "--database-url", url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: database "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_any_command_on_a_database_without_schema_says_to_run_init(tmp_path):
    result = _run("explain", "cust-0001", ORCH_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "no such table" in result.stderr and "orchestrator init" in result.stderr


def test_boolean_options_are_shown_as_flags_in_help():
    from orchestrator.cli import command

    root = command()
    stack, flags = [root], 0
    while stack:
        current = stack.pop()
        for param in current.params:
            if getattr(param, "is_flag", False):
                flags += 1
                assert param.metavar == "", f"{current.name} {param.opts}"
        stack.extend(getattr(current, "commands", {}).values())
    assert flags > 20
    shown = _run("plan", "--help").stdout
    assert "--json" in shown and "<bool>" not in shown
