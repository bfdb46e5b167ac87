"""The daily report flow publishes each recent campaign's and incident's results as artifacts."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import yaml

from flows.report import report
from orchestrator.db import session_scope
from orchestrator.models import Campaign, Customer, Message, utcnow
from orchestrator.settings import REPO_ROOT
from tests.support.flow_world import artifacts
from tests.test_reports import seed


def test_the_report_flow_publishes_recent_campaigns_incidents_and_the_overview(prefect_harness, sqlite_url):
    seed()
    with session_scope() as s:  # a campaign of last month is not recent
        customer = Customer(external_id="old", email="old@example.com")
        old = Campaign(name="winter", segment="all", topic="marketing", template="spring_sale")
        s.add_all([customer, old])
        s.flush()
        s.add(Message(dedupe_key="campaign:winter", customer_id=customer.id, topic="marketing",
                      channel="email", template="spring_sale", status="sent", campaign_id=old.id,
                      created_at=utcnow() - timedelta(days=20), sent_at=utcnow() - timedelta(days=20)))

    state = report(return_state=True)

    assert state.is_completed()
    published = state.result()
    assert set(published) == {"report-campaign-spring", "report-incident-inc-7", "report-overview"}
    assert published["report-campaign-spring"]["opened"] == 2
    assert published["report-overview"]["messages"] == 11
    found = artifacts(state.state_details.flow_run_id)
    assert set(found) == {"report-campaign-spring", "report-campaign-spring-channels",
                          "report-incident-inc-7", "report-incident-inc-7-channels",
                          "report-overview", "report-overview-channels"}
    assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in found)
    table = json.loads(found["report-campaign-spring-channels"].data)
    assert {row["channel"]: (row["sent"], row["delivered"], row["opened"]) for row in table} == {
        "email": (5, 3, 2), "sms": (1, 1, 0)}
    page = found["report-campaign-spring"].data
    assert "## Funnel" in page and "opened \\(unique, by people\\) | 2" in page
    assert "## Sender health" in page and "sg\\_machine\\_open" in page
    assert "c0@example.com" not in page + json.dumps(table)


def test_prefect_yaml_runs_the_report_daily():
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    [deployment] = [d for d in config["deployments"] if d["name"] == "report-daily"]
    assert deployment["entrypoint"] == "flows/report.py:report"
    assert deployment["schedules"] == [{"cron": "0 7 * * *", "timezone": "UTC"}]
    assert deployment["work_pool"]["name"] == "orchestrator-pool"
