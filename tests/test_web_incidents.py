"""POST /incidents: monitoring tools start the outage notice with a bearer token."""

from __future__ import annotations

from orchestrator.cli.serve import launch_outage_notice
from orchestrator.web.incidents import IncidentRequest
from tests.support.web import INCIDENT_TOKEN, web_fixture  # noqa: F401

INCIDENT = {"incident_id": "inc-42", "status": "investigating", "severity": "major",
            "summary": "Card payments fail in the EU region.", "segment": "eu-customers",
            "affected": {"region": "eu"}, "status_page_url": "https://status.example.com/inc-42"}
BEARER = {"Authorization": f"Bearer {INCIDENT_TOKEN}"}


def test_a_valid_token_starts_the_outage_notice(web):
    response = web.client.post("/incidents", json=INCIDENT, headers=BEARER)
    assert response.status_code == 202
    assert response.json() == {"run_id": "run-1", "incident_id": "inc-42"}
    [launched] = web.launcher.launched
    assert launched.flow_parameters() == INCIDENT


def test_a_missing_or_wrong_token_is_refused_before_anything_starts(web):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": INCIDENT_TOKEN},
                    {"Authorization": f"Basic {INCIDENT_TOKEN}"}):
        response = web.client.post("/incidents", json=INCIDENT, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    assert web.launcher.launched == []


def test_an_invalid_body_is_explained_and_starts_nothing(web):
    bodies = ({**INCIDENT, "severity": "apocalyptic"}, {"incident_id": "inc-42"}, {**INCIDENT, "extra": 1})
    for body in bodies:
        response = web.client.post("/incidents", json=body, headers=BEARER)
        assert response.status_code == 422
        assert response.json()["detail"]
    assert web.client.post("/incidents", content=b"{oops", headers=BEARER).status_code == 422
    assert web.launcher.launched == []


def test_without_a_configured_token_the_trigger_is_unavailable(web, monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.delenv("ORCH_INCIDENT_TOKEN")
    get_settings.cache_clear()
    assert web.client.post("/incidents", json=INCIDENT, headers=BEARER).status_code == 503
    assert web.launcher.launched == []


def test_a_launcher_failure_is_reported_as_such(web):
    def broken(_incident):
        raise ConnectionError("prefect server unreachable")

    web.client.app.state.launch_incident = broken
    assert web.client.post("/incidents", json=INCIDENT, headers=BEARER).status_code == 502


def test_the_launcher_starts_the_notice_with_the_request_parameters_on_the_configured_server(monkeypatch):
    import flows.trigger
    from orchestrator.settings import get_settings

    calls: list[tuple[dict, str | None]] = []
    monkeypatch.setattr(flows.trigger, "start_outage_notice",
                        lambda params, api: calls.append((params, api)) or "run-9")
    monkeypatch.setenv("ORCH_PREFECT_API_URL", "http://127.0.0.1:4200/api")
    get_settings.cache_clear()
    assert launch_outage_notice(IncidentRequest(**INCIDENT)) == "run-9"
    assert calls == [(INCIDENT, "http://127.0.0.1:4200/api")]


def test_a_retried_post_gets_the_same_run_and_starts_no_second_notice(prefect_harness, sqlite_url,
                                                                      monkeypatch, fake_sendgrid):
    """The real launcher: the run is created on the Prefect server and executed at once by the web
    app's process; a retry (even after the web app restarted) is answered with the same run."""
    import time
    from uuid import UUID

    from fastapi.testclient import TestClient

    import flows.trigger
    from orchestrator.web import create_app
    from tests.support.flow_world import add_customer, artifacts, flow_run, ledger, use_fake_providers
    from tests.support.web import configure

    configure(monkeypatch)
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    for i in range(3):
        add_customer(f"eu-{i}", email=f"eu{i}@example.com", region="eu")
    body = {key: value for key, value in INCIDENT.items() if key != "segment"} | {"incident_id": "inc-retry"}
    with TestClient(create_app(launch_incident=launch_outage_notice)) as client:
        first = client.post("/incidents", json=body, headers=BEARER)
        retried = client.post("/incidents", json=body, headers=BEARER)
        monkeypatch.setattr(flows.trigger, "_started", {})  # as after a restart of the web app
        after_restart = client.post("/incidents", json=body, headers=BEARER)
    assert first.status_code == retried.status_code == after_restart.status_code == 202
    run_id = first.json()["run_id"]
    assert retried.json()["run_id"] == run_id == after_restart.json()["run_id"]

    deadline = time.monotonic() + 60
    while not (run := flow_run(UUID(run_id))).state.is_final() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert run.state.is_completed() and run.name == "outage-inc-retry-investigating"
    assert artifacts(run.id)  # the run's summary is in the Prefect UI
    assert len(fake_sendgrid.accepted()) == 3  # one notice per customer, not two or three
    assert {m.status for m in ledger("incident:inc-retry").values()} == {"sent"}


def test_a_trigger_sent_again_after_its_notice_failed_starts_it_again(prefect_harness, sqlite_url,
                                                                        monkeypatch, fake_sendgrid):
    """A run that failed (the database was down, say) is not the trigger's last word: the same POST
    again starts a new run, whose retries share it, and the ledger still notifies nobody twice."""
    import time
    from uuid import UUID

    from fastapi.testclient import TestClient

    import flows.outage
    from orchestrator.web import create_app
    from tests.support.flow_world import add_customer, flow_run, use_fake_providers
    from tests.support.web import configure

    configure(monkeypatch)
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid)
    for i in range(3):
        add_customer(f"eu-{i}", email=f"eu{i}@example.com", region="eu")
    real_record_update = flows.outage.record_update
    outages = iter([True])

    def record_update(*args, **kwargs):
        if next(outages, False):
            raise RuntimeError("database unavailable")
        return real_record_update(*args, **kwargs)

    monkeypatch.setattr(flows.outage, "record_update", record_update)

    def finished(run_id: str):
        deadline = time.monotonic() + 60
        while not (run := flow_run(UUID(run_id))).state.is_final() and time.monotonic() < deadline:
            time.sleep(0.2)
        return run

    body = {key: value for key, value in INCIDENT.items() if key != "segment"} | {"incident_id": "inc-again"}
    with TestClient(create_app(launch_incident=launch_outage_notice)) as client:
        failed = client.post("/incidents", json=body, headers=BEARER).json()["run_id"]
        assert finished(failed).state.is_failed() and not fake_sendgrid.accepted()
        again = client.post("/incidents", json=body, headers=BEARER).json()["run_id"]
        retried = client.post("/incidents", json=body, headers=BEARER).json()["run_id"]
    assert again != failed and retried == again
    assert finished(again).state.is_completed()
    assert len(fake_sendgrid.accepted()) == 3  # each customer once


WARM_UP = """
import sys
from flows.trigger import warm_up
warm_up(sys.argv[1])
print(" ".join(m for m in ("flows.outage", "prefect.task_engine", "twitter_text") if m in sys.modules))
"""


def test_the_web_apps_warm_up_loads_what_the_first_notice_and_its_public_post_need(
        prefect_harness, sqlite_url, tmp_path):
    """Checked in a fresh process, as the web app starts: otherwise the first trigger pays for it
    (twitter-text, which measures the public post, took 0.4 s to load)."""
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORCH_"))}
    env |= {"ORCH_DATABASE_URL": sqlite_url}
    done = subprocess.run([sys.executable, "-c", WARM_UP, str(PREFECT_API_URL.value())], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "failed" not in done.stderr, done.stderr[-3000:]  # warm_up logs what went wrong, and goes on
    assert done.stdout.split() == ["flows.outage", "prefect.task_engine", "twitter_text"]
