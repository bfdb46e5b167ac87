"""Without a Prefect server, a command that runs a flow starts Prefect's local one first thing.

The command runs as a user runs it (its own process, no PREFECT_API_URL, a fresh PREFECT_HOME):
the flow runs against the server the command started early (Prefect starts no second one), and the
server is gone when the command ends.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.flow_world import add_customer

ORCHESTRATOR = Path(sys.executable).with_name("orchestrator")


def test_outage_notify_without_a_server_runs_against_the_local_server_it_started_early(sqlite_url, tmp_path):
    add_customer("eu-1", email="eu1@example.com", region="eu")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORCH_"))}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect-home"), "ORCH_DATABASE_URL": sqlite_url,
            "ORCH_CHANNEL_ADAPTERS": '{"email": "outbox", "sms": "outbox", "social": "outbox"}',
            "ORCH_OUTBOX_DIR": str(tmp_path / "outbox")}
    done = subprocess.run([str(ORCHESTRATOR), "outage", "notify", "inc-local", "--status", "investigating",
                           "--summary", "Card payments fail", "--affected", "region=eu", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["flow"] == "outage-notice" and result["dispatched"]["sent"] == 1
    assert "Starting temporary server" not in done.stderr  # Prefect did not start one of its own
    port = int(re.search(r"View at http://127\.0\.0\.1:(\d+)/", done.stderr).group(1))
    with socket.socket() as sock:  # the command stopped the server it started
        assert sock.connect_ex(("127.0.0.1", port)) != 0
