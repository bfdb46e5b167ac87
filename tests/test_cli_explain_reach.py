"""``orchestrator explain CUSTOMER --campaign NAME`` (or ``--incident KEY``): the campaign's decisions
for the customer (the incident's notices), or, when it decided nothing for them, why it missed them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.cli.output import console
from orchestrator.db import session_scope
from orchestrator.ledger.campaigns import cancel_campaign, set_campaign_status, upsert_campaign
from orchestrator.ledger.incidents import record_update
from orchestrator.models import Campaign, Customer, Incident
from tests.support.ledger import add_customers, add_messages

RAN = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setattr(console, "_width", 200)


def campaign(name: str, segment: str, *, status: str = "dispatched", ran: datetime = RAN) -> int:
    campaign_id = upsert_campaign(name, segment, "marketing", "spring_sale", None, "now")
    assert campaign_id is not None
    set_campaign_status(campaign_id, status)
    with session_scope() as s:
        s.get(Campaign, campaign_id).updated_at = ran
    return campaign_id


def customer(*, tier: str = "standard", joined: datetime = RAN - timedelta(days=30),
             changed: datetime | None = None, **attributes: object) -> tuple[int, str]:
    (cid,) = add_customers(1, tier=tier, attributes=attributes)
    with session_scope() as s:
        row = s.get(Customer, cid)
        row.created_at, row.updated_at = joined, changed or joined
        return cid, row.external_id


def explain(external_id: str, name: str, *more: str, about: str = "campaign"):
    return CliRunner().invoke(app, ["explain", external_id, f"--{about}", name, *more])


def not_reached(external_id: str, name: str, about: str = "campaign") -> dict:
    result = explain(external_id, name, "--json", about=about)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer[about] == name and answer["decisions"] == []
    return answer["not_reached"]


def test_a_customer_the_campaign_decided_about_sees_only_that_campaigns_rows(db_url):
    spring, autumn = campaign("spring", "all"), campaign("autumn", "all")
    cid, external_id = customer()
    (spring_row,) = add_messages([cid], campaign_id=spring, dedupe="campaign:spring")
    add_messages([cid], campaign_id=autumn, dedupe="campaign:autumn")

    answer = json.loads(explain(external_id, "spring", "--json").output)
    assert [d["message_id"] for d in answer["decisions"]] == [spring_row] and answer["not_reached"] is None
    shown = explain(external_id, "spring").output
    assert "campaign spring" in shown and "campaign autumn" not in shown


def test_a_customer_outside_the_segment_is_told_which_conditions_they_do_not_meet(db_url):
    campaign("premium-only", "premium")
    campaign("newsletter", "newsletter_readers")
    _, standard = customer(interests=["sport"])

    answer = not_reached(standard, "premium-only")
    assert answer["reason"] == "not_in_audience" and answer["unmet"] == [{"tier": {"equals": "premium"}}]
    # Of the two conditions, the one met (an email address) is not named.
    answer = not_reached(standard, "newsletter")
    assert answer["unmet"] == [{"attributes.interests": {"contains": "newsletter"}}]
    shown = " ".join(explain(standard, "newsletter").output.split())
    assert f"Campaign newsletter did not reach {standard}: Not in segment newsletter_readers (now): " \
           "does not meet `attributes.interests: {contains: newsletter}`." in shown


def test_a_customer_in_the_segment_is_told_what_kept_the_run_from_them(db_url):
    campaign("done", "premium")
    campaign("going", "premium", status="running")
    campaign("stopped", "premium")
    cancel_campaign("stopped")
    _, joined_later = customer(tier="premium", joined=RAN + timedelta(days=1))
    _, moved_up = customer(tier="premium", changed=RAN + timedelta(hours=2))
    _, missed = customer(tier="premium")

    answer = not_reached(joined_later, "done")
    assert answer["reason"] == "joined_after" and "became a customer (2026-11-21 09:00 UTC) after the " \
           "campaign last ran (2026-11-20 09:00 UTC): a run with the same name reaches them and sends " \
           "nobody twice" in answer["text"]
    assert not_reached(moved_up, "done")["reason"] == "changed_after"
    assert not_reached(missed, "done")["reason"] == "not_decided"
    assert not_reached(missed, "going")["reason"] == "running"
    assert not_reached(missed, "stopped")["reason"] == "cancelled"


def test_a_campaign_whose_segment_is_gone_says_so_and_an_unknown_campaign_is_an_error(db_url):
    campaign("old", "retired_segment")
    _, external_id = customer()

    assert not_reached(external_id, "old")["reason"] == "segment_unknown"
    result = explain(external_id, "never-ran")
    assert result.exit_code != 0 and "no campaign named 'never-ran'" in result.output


def test_an_incidents_notices_say_why_they_missed_a_customer_outside_the_affected(db_url):
    record_update("INC-7", "investigating", "major", "Payments fail", title=None, segment=None,
                  status_page_url=None, affected={"region": "eu"})
    with session_scope() as s:
        incident = s.exec(select(Incident).where(Incident.incident_key == "INC-7")).one()
        incident_pk, incident.updated_at = incident.id, RAN
    told, told_id = customer(region="eu")
    add_messages([told], incident_id=incident_pk, dedupe="incident:INC-7:investigating")
    _, elsewhere = customer(region="us")
    _, joined_later = customer(region="eu", joined=RAN + timedelta(hours=1))

    answer = json.loads(explain(told_id, "INC-7", "--json", about="incident").output)
    assert len(answer["decisions"]) == 1 and answer["not_reached"] is None
    answer = not_reached(elsewhere, "INC-7", about="incident")
    assert answer["reason"] == "not_in_audience" and answer["unmet"] == [{"attributes.region": "eu"}]
    assert "Not in segment all, affected `attributes.region: eu` (now)" in answer["text"]
    answer = not_reached(joined_later, "INC-7", about="incident")
    assert answer["reason"] == "joined_after" and "after the incident's last update (2026-11-20 09:00 " \
           "UTC): triggering that update again reaches them and notifies nobody twice" in answer["text"]
    shown = " ".join(explain(elsewhere, "INC-7", about="incident").output.split())
    assert shown.startswith(f"Incident INC-7's notices did not reach {elsewhere}: Not in segment all")

    record_update("INC-7", "resolved", "major", "Fixed", title=None, segment=None, status_page_url=None)
    assert not_reached(joined_later, "INC-7", about="incident")["reason"] == "resolved"
    assert explain(elsewhere, "INC-404", about="incident").exit_code != 0
    assert "not both" in CliRunner().invoke(app, ["explain", elsewhere, "--campaign", "a", "--incident",
                                                  "b"]).output
