"""A command that runs a flow in its own process loads Prefect and the flow with Python's collector
off, then freezes what it loaded (``flows.garbage_collection.loading_for_good``).

Checked in a fresh process, as a user runs ``orchestrator outage notify`` without a service: every
collection the process ran is recorded with what was loaded at the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.flow_world import add_customer

SCRIPT = """
import gc, sys
loading = []  # one entry per collection: Prefect loaded (or loading) and the flow not yet
gc.callbacks.append(lambda phase, info: phase == "start" and loading.append(
    "prefect" in sys.modules and "flows.outage" not in sys.modules))
from orchestrator.cli import main
sys.argv = ["orchestrator", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    assert not exit.code, exit.code
print("collections while loading:", sum(loading), file=sys.stderr)
print("frozen:", gc.get_freeze_count(), file=sys.stderr)
"""


def test_outage_notify_loads_prefect_and_the_flow_without_collecting_and_freezes_them(
        prefect_harness, sqlite_url, tmp_path):
    from prefect.settings import PREFECT_API_URL

    add_customer("eu-1", email="eu1@example.com", region="eu")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORCH_"))}
    env |= {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "ORCH_DATABASE_URL": sqlite_url,
            "ORCH_CHANNEL_ADAPTERS": '{"email": "outbox", "sms": "outbox", "social": "outbox"}',
            "ORCH_OUTBOX_DIR": str(tmp_path / "outbox")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, "outage", "notify", "inc-gc", "--status",
                           "investigating", "--summary", "Card payments fail", "--affected", "region=eu",
                           "--no-post", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["dispatched"]["sent"] == 1
    assert "collections while loading: 0\n" in done.stderr
    frozen = int(done.stderr.split("frozen: ")[1].split()[0])
    assert frozen > 50_000  # Prefect alone makes over 100,000 objects
