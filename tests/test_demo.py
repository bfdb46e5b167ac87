"""``orchestrator demo``: the README's main job, end to end through the real flows, run twice.

The command runs as a user runs it (its own process, its own terminal output), against the test
session's Prefect server so that it does not start one of its own.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from orchestrator.demo import SAMPLE_CUSTOMERS

ORCHESTRATOR = Path(sys.executable).with_name("orchestrator")


@pytest.fixture
def demo_env(tmp_path, prefect_harness):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "100",
            "ORCH_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    return tmp_path, env


def demo(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ORCHESTRATOR), "demo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=240)


def flat(text: str) -> str:
    return " ".join(text.split())


def outbox_lines(root: Path) -> int:
    return sum(len(path.read_text(encoding="utf-8").splitlines()) for path in (root / "outbox").glob("*.log"))


def test_the_demo_runs_end_to_end_explains_itself_and_never_sends_twice(demo_env):
    root, env = demo_env

    first = demo(env, root)

    assert first.returncode == 0, first.stderr
    out = flat(first.stdout)
    assert "300 customer(s) imported" in out
    for title in ("Campaign: spring sale", "Outage INC-DEMO-1 (region eu-west): investigating",
                  "Outage INC-DEMO-1: resolved", "A few customers, and why"):
        assert title in out
    assert "Dispatched now:" in out and "sent" in out
    assert "Not sent (yet), and why" in out and "asked not to be contacted" in out
    assert "Public social post: posted" in out
    assert "Earlier notices cancelled before they went out:" in out
    assert "orchestrator dispatch-due" in out  # how what waits goes out, without a Prefect worker
    # The cancelled example, when the hour leaves a notice waiting to be cancelled, says why once.
    assert first.stdout.count("Cancelled:") == ("(cancelled)" in first.stdout)
    assert str(root / "outbox") in first.stdout.replace("\n", "")
    sent = outbox_lines(root)
    assert sent > 100
    with SAMPLE_CUSTOMERS.open(encoding="utf-8") as fh:
        addresses = [a for row in csv.DictReader(fh) for a in (row["email"], row["phone"]) if a]
    assert not [a for a in addresses if a in first.stdout + first.stderr]  # never their addresses

    second = demo(env, root)

    assert second.returncode == 0, second.stderr
    assert "nothing was decided or sent twice" in flat(second.stdout)
    assert "Public social post: not posted (already posted for this update)" in flat(second.stdout)
    assert outbox_lines(root) == sent

    fresh = demo(env, root, "--fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "Starting over" in fresh.stdout and "300 customer(s) imported" in flat(fresh.stdout)
    with sqlite3.connect(root / "demo.db") as db:
        (entries,) = db.execute("SELECT count(*) FROM outbox_entry").fetchone()
    assert outbox_lines(root) == entries > 100  # the old outbox went with the old database


def test_fresh_refuses_to_drop_a_database_that_is_not_a_sqlite_file(demo_env):
    root, env = demo_env
    result = demo(env, root, "--fresh", "--database-url", "postgresql://127.0.0.1/prod")
    assert result.returncode == 2
    assert "--fresh only recreates a SQLite database file" in flat(result.stderr)
