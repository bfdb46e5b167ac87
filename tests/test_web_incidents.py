"""POST /incidents: monitoring tools start the outage notice with a bearer token."""

from __future__ import annotations

import sys
import threading
import types

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
    assert launched.model_dump(exclude_none=True) == INCIDENT


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


def test_without_prefect_the_flow_runs_in_process_with_the_request_parameters(monkeypatch):
    calls: list[dict] = []
    done = threading.Event()

    def outage_notice(**kwargs):
        calls.append(kwargs)
        done.set()

    monkeypatch.setitem(sys.modules, "flows.outage", types.SimpleNamespace(outage_notice=outage_notice))
    run_id = launch_outage_notice(IncidentRequest(**INCIDENT))
    assert done.wait(10)
    assert run_id.startswith("local-")
    assert calls == [INCIDENT]
