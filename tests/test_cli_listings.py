"""``campaign list`` and ``outage list``: the latest campaigns and incidents, where each stands and
what became of its messages."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import update
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.ledger.campaigns import cancel_campaign, upsert_campaign
from orchestrator.ledger.incidents import record_update
from orchestrator.models import Campaign, MessageStatus, utcnow
from tests.support.ledger import add_messages
from tests.test_policy_reserve import add_customers


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def new_campaign(name: str, created_ago: timedelta) -> int:
    campaign_id = upsert_campaign(name, "all", "marketing", "promo", None, "now")
    assert campaign_id is not None
    with session_scope() as s:
        created = utcnow() - created_ago
        s.execute(update(Campaign).where(Campaign.id == campaign_id).values(created_at=created))
    return campaign_id


def test_campaigns_newest_first_with_their_messages_by_progress(db_url):
    assert "None yet." in run("campaign", "list").stdout
    ids = add_customers(6)
    older = new_campaign("autumn", timedelta(days=3))
    newer = new_campaign("spring", timedelta(hours=1))
    for status, who in ((MessageStatus.sent, ids[:2]), (MessageStatus.delivered, ids[2:3]),
                        (MessageStatus.deferred, ids[3:4]), (MessageStatus.sending, ids[4:5]),
                        (MessageStatus.suppressed, ids[5:])):
        add_messages(who, template="promo", status=status, dedupe="spring", campaign_id=newer)
    for status, who in ((MessageStatus.planned, ids[:3]), (MessageStatus.reconcile, ids[3:4])):
        add_messages(who, template="promo", status=status, dedupe="autumn", campaign_id=older)
    cancel_campaign("autumn")

    listed = json.loads(run("campaign", "list", "--json").stdout)

    assert [c["name"] for c in listed] == ["spring", "autumn"]
    spring, autumn = listed
    assert spring["status"] == "running" and spring["segment"] == "all" and spring["template"] == "promo"
    assert spring["messages"] == {"sent": 2, "delivered": 1, "deferred": 1, "sending": 1, "suppressed": 1}
    assert (spring["sent"], spring["waiting"], spring["suppressed"], spring["cancelled"]) == (3, 2, 1, 0)
    assert autumn["status"] == "cancelled"
    assert (autumn["sent"], autumn["waiting"], autumn["cancelled"], autumn["to_reconcile"]) == (0, 0, 3, 1)
    latest = json.loads(run("campaign", "list", "--limit", "1", "--json").stdout)
    assert [c["name"] for c in latest] == ["spring"]

    table = " ".join(run("campaign", "list").stdout.split())
    assert "spring running" in table and "3 sent, 2 waiting, 1 suppressed" in table
    assert "autumn cancelled" in table and "0 sent, 3 cancelled, 1 to reconcile" in table
    assert "orchestrator reconcile list" in table


def test_incidents_latest_updated_first_with_their_updates_and_notices(db_url):
    assert "None yet." in run("outage", "list").stdout
    ids = add_customers(3)
    first = record_update("INC-1", "investigating", "major", "Card payments fail", title="Payments",
                          segment=None, status_page_url=None)
    record_update("INC-1", "resolved", "major", "Fixed", title=None, segment=None, status_page_url=None)
    other = record_update("INC-2", "investigating", "minor", "Slow logins", title="Logins", segment=None,
                          status_page_url=None)
    add_messages(ids[:2], template="outage_notice", status=MessageStatus.sent, dedupe="inc1",
                 topic="outage", incident_id=first.incident_pk)
    add_messages(ids[2:], template="outage_notice", status=MessageStatus.cancelled, dedupe="inc1",
                 topic="outage", incident_id=first.incident_pk)
    add_messages(ids[:1], template="outage_notice", status=MessageStatus.deferred, dedupe="inc2",
                 topic="outage", incident_id=other.incident_pk)

    listed = {i["incident"]: i for i in json.loads(run("outage", "list", "--json").stdout)}

    assert list(listed) == ["INC-2", "INC-1"]  # INC-2 was updated last
    assert listed["INC-1"]["updates"] == ["investigating", "resolved"]
    assert listed["INC-1"]["status"] == "resolved"
    assert (listed["INC-1"]["sent"], listed["INC-1"]["cancelled"], listed["INC-1"]["waiting"]) == (2, 1, 0)
    assert listed["INC-2"]["waiting"] == 1 and listed["INC-2"]["severity"] == "minor"
    table = " ".join(run("outage", "list").stdout.split())
    assert "INC-1 resolved major" in table and "2 sent, 1 cancelled" in table
    assert "orchestrator report incident <incident>" in table
