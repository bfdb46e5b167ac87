"""``orchestrator outage notify`` hands the notice to the running web app (ORCH_SERVICE_URL).

The web app here is the real one, served by uvicorn on 127.0.0.1 with the real launcher and a
Prefect server; the command runs through typer's runner (the handoff's lean imports are checked
in a fresh process against a recording server).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.settings import get_settings
from tests.support.web import INCIDENT_TOKEN, configure

NOTIFY = ["outage", "notify", "--status", "investigating", "--severity", "major",
          "--summary", "Card payments fail in the EU region.", "--affected", "region=eu", "--no-post"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def world(prefect_harness, sqlite_url, monkeypatch, fake_sendgrid) -> None:
    from tests.support.flow_world import add_customer, use_fake_providers

    configure(monkeypatch)
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    for i in range(3):
        add_customer(f"eu-{i}", email=f"eu{i}@example.com", region="eu")


@pytest.fixture
def service(world, tmp_path) -> Iterator[str]:
    """``orchestrator serve`` in a process of its own on a free port of 127.0.0.1, with this test's
    database, fakes, token and Prefect server (its settings are its own, as in production)."""
    import os

    from prefect.settings import PREFECT_API_URL

    port = _free_port()
    env = {**os.environ, "ORCH_PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - the server writes it until the end
    command = [str(Path(sys.executable).with_name("orchestrator")), "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the web app did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(20)
    log.close()


def _notify(monkeypatch, service_url: str, token: str, incident: str, *extra: str) -> Any:
    monkeypatch.setenv("ORCH_SERVICE_URL", service_url)
    monkeypatch.setenv("ORCH_INCIDENT_TOKEN", token)
    get_settings.cache_clear()
    return CliRunner().invoke(app, [*NOTIFY, incident, *extra])


def _settled(run_id: str) -> Any:
    from tests.support.flow_world import flow_run

    deadline = time.monotonic() + 60
    while not (run := flow_run(UUID(run_id))).state.is_final() and time.monotonic() < deadline:
        time.sleep(0.2)
    return run


def _outage_runs(incident: str) -> list[Any]:
    """The flow runs of this incident's update on the Prefect server (shared by the tests)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"outage-{incident}-investigating"])))


def test_the_command_hands_the_notice_to_the_service_and_a_retry_starts_no_second_one(service, monkeypatch,
                                                                                       fake_sendgrid):
    from tests.support.flow_world import artifacts, ledger

    first = _notify(monkeypatch, service, INCIDENT_TOKEN, "inc-cli-retry", "--json")
    retried = _notify(monkeypatch, service, INCIDENT_TOKEN, "inc-cli-retry", "--json")
    assert first.exit_code == retried.exit_code == 0, first.output + retried.output
    answer, again = json.loads(first.stdout), json.loads(retried.stdout)
    assert answer["handed_to"] == service and answer["incident_id"] == "inc-cli-retry"
    assert again["run_id"] == answer["run_id"]

    run = _settled(answer["run_id"])
    assert run.state.is_completed() and run.parameters["social_post"] is False
    assert artifacts(run.id)  # the run's summary is in the Prefect UI, as for POST /incidents
    assert [r.id for r in _outage_runs("inc-cli-retry")] == [run.id]  # nothing ran in the command itself
    assert len(fake_sendgrid.accepted()) == 3
    assert {m.status for m in ledger("incident:inc-cli-retry").values()} == {"sent"}


def test_the_command_says_how_to_follow_the_run(service, monkeypatch):
    result = _notify(monkeypatch, service, INCIDENT_TOKEN, "inc-follow")
    assert result.exit_code == 0, result.output
    [run] = _outage_runs("inc-follow")
    run_id = run.id
    _settled(str(run_id))
    assert f"flow run {run_id}" in result.stdout
    assert f"prefect flow-run logs {run_id}" in result.stdout
    assert "orchestrator report incident inc-follow" in result.stdout


@pytest.mark.parametrize("problem", ["wrong token", "no service"])
def test_a_service_that_cannot_take_it_is_named_and_the_notice_runs_here(problem, service, monkeypatch,
                                                                         fake_sendgrid):
    from tests.support.flow_world import ledger

    url, token = (service, "not-the-token") if problem == "wrong token" else (
        f"http://127.0.0.1:{_free_port()}", INCIDENT_TOKEN)
    incident = "inc-" + problem.replace(" ", "-")
    result = _notify(monkeypatch, url, token, incident, "--json")
    assert result.exit_code == 0, result.output
    expected = "refused the token (401)" if problem == "wrong token" else "did not answer"
    assert expected in result.stderr and "Running it in this process instead" in result.stderr
    if problem == "wrong token":
        assert "Set ORCH_INCIDENT_TOKEN" in result.stderr
        assert "not-the-token" not in result.stderr + result.stdout
    assert json.loads(result.stdout)["flow"] == "outage-notice"  # this process ran the flow itself
    assert len(fake_sendgrid.accepted()) == 3
    assert {m.status for m in ledger(f"incident:{incident}").values()} == {"sent"}


def test_a_notice_the_service_refuses_as_invalid_is_an_error_and_nothing_runs(service, monkeypatch,
                                                                             fake_sendgrid):
    result = _notify(monkeypatch, service, INCIDENT_TOKEN, "inc-invalid", "--status-page-url",
                     "ftp://status.example.com")
    assert result.exit_code == 2
    assert "refused the notice" in result.stderr and "status_page_url" in result.stderr
    assert _outage_runs("inc-invalid") == [] and fake_sendgrid.accepted() == []


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "authorization": self.headers["Authorization"],
                          "body": json.loads(body)})
        answer = json.dumps({"run_id": "0b7d8c2e-0000-4000-8000-000000000001", "incident_id": "inc-cli"})
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args: Any) -> None:
        pass


def test_the_handoff_loads_neither_prefect_nor_the_database_layer_nor_validators(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = ("import sys\nfrom orchestrator.cli import main\nsys.argv = ['orchestrator', *sys.argv[1:]]\n"
              "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
              "loaded = [m for m in ('prefect', 'sqlalchemy', 'fastapi', 'flows', 'email_validator', "
              "'phonenumbers') if m in sys.modules]\n"
              "print('loaded:', loaded, file=sys.stderr)\n")
    env = {"PATH": "/usr/bin:/bin", "ORCH_SERVICE_URL": f"http://127.0.0.1:{server.server_port}",
           "ORCH_INCIDENT_TOKEN": INCIDENT_TOKEN, "ORCH_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"}
    try:
        done = subprocess.run([sys.executable, "-c", script, *NOTIFY, "inc-cli", "--json"], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert "loaded: []" in done.stderr
    assert json.loads(done.stdout)["run_id"] == "0b7d8c2e-0000-4000-8000-000000000001"
    [request] = _Recorder.seen
    assert request["path"] == "/incidents" and request["authorization"] == f"Bearer {INCIDENT_TOKEN}"
    assert request["body"] == {
        "incident_id": "inc-cli", "status": "investigating", "severity": "major",
        "summary": "Card payments fail in the EU region.", "affected": {"region": "eu"}, "social_post": False}
    assert not (tmp_path / "none.db").exists()  # the database was not touched
