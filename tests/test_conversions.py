"""Conversion events through POST /events and `orchestrator events import`."""

from __future__ import annotations

import json

from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.models import ConversionEvent
from orchestrator.settings import get_settings
from tests.support.web import add_customer, web_fixture  # noqa: F401

TOKEN = "events-test-token"


def conversions() -> list[tuple[str, float | None, str]]:
    with session_scope() as s:
        rows = s.exec(select(ConversionEvent).order_by(ConversionEvent.id)).all()
    return [(r.name, r.value, r.occurred_at.isoformat()) for r in rows]


def open_endpoint(monkeypatch) -> None:
    monkeypatch.setenv("ORCH_EVENTS_TOKEN", TOKEN)
    get_settings.cache_clear()


def post(web, body, token: str | None = TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return web.client.post("/events", content=json.dumps(body), headers=headers)


def test_events_are_recorded_once_with_a_bearer_token(web, db_url, monkeypatch):
    open_endpoint(monkeypatch)
    add_customer()
    event = {"customer": "c-ada", "event": "purchase", "time": "2026-03-25T14:02:00Z", "value": 49.5}

    assert post(web, event, token=None).status_code == 401
    assert post(web, event, token="wrong").status_code == 401
    assert conversions() == []

    answer = post(web, {"events": [event, {**event, "time": "2026-03-26T09:00:00+01:00", "value": None}]})
    assert answer.status_code == 200 and answer.json() == {"recorded": 2, "duplicates": 0}
    again = post(web, [event])
    assert again.json() == {"recorded": 0, "duplicates": 1}
    assert conversions() == [("purchase", 49.5, "2026-03-25T14:02:00+00:00"),
                             ("purchase", None, "2026-03-26T08:00:00+00:00")]


def test_a_request_with_a_bad_event_records_nothing_and_names_each_problem(web, sqlite_url, monkeypatch):
    open_endpoint(monkeypatch)
    add_customer()
    good = {"customer": "c-ada", "event": "purchase", "time": "2026-03-25T14:02:00Z"}
    answer = post(web, [good, {**good, "time": "2026-03-25 14:02"}, {**good, "customer": "nobody"},
                        {**good, "value": "lots"}])
    assert answer.status_code == 422
    assert [(d["index"], d["field"]) for d in answer.json()["detail"]] == [(1, "time"), (3, "value")]
    unknown = post(web, [good, {**good, "customer": "nobody"}])
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["index"] == 1
    assert post(web, "not an event").status_code == 422
    assert web.client.post("/events", content=b"{", headers={"Authorization": f"Bearer {TOKEN}"}
                           ).status_code == 400
    assert conversions() == []


def test_without_a_configured_token_the_endpoint_is_closed(web, sqlite_url):
    assert post(web, {"customer": "c-ada"}).status_code == 503


def test_import_keeps_the_good_lines_reports_the_bad_and_is_idempotent(sqlite_url, tmp_path):
    add_customer()
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("customer,event,time,value\n"
                        "c-ada,purchase,2026-03-25T14:02:00Z,49.5\n"
                        "c-ada,purchase,yesterday,1\n"
                        "nobody,purchase,2026-03-25T14:02:00Z,\n"
                        "c-ada,upgrade,2026-03-27T10:00:00+02:00,\n")
    runner = CliRunner()
    first = runner.invoke(app, ["events", "import", str(csv_file), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert (report["recorded"], report["duplicates"]) == (2, 0)
    assert [(r["position"], r["field"]) for r in report["rejected"]] == [(3, "time"), (4, "customer")]
    second = json.loads(runner.invoke(app, ["events", "import", str(csv_file), "--json"]).output)
    assert (second["recorded"], second["duplicates"]) == (0, 2)

    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text('{"customer": "c-ada", "event": "purchase", "time": "2026-04-01T08:00:00Z", '
                     '"value": 10}\n{broken\n')
    third = runner.invoke(app, ["events", "import", str(jsonl)])
    assert third.exit_code == 0 and "1 event(s) recorded" in third.output and "not JSON" in third.output
    assert len(conversions()) == 3

    header_only = tmp_path / "bad.csv"
    header_only.write_text("who,what\nx,y\n")
    assert runner.invoke(app, ["events", "import", str(header_only)]).exit_code == 2
    only_bad = tmp_path / "only_bad.csv"
    only_bad.write_text("customer,event,time\nnobody,purchase,2026-03-25T14:02:00Z\n")
    assert runner.invoke(app, ["events", "import", str(only_bad)]).exit_code == 1
