"""Cancelling a campaign: what has not gone out never will, a reservation still going stops (or is
cancelled after it, on PostgreSQL), the name cannot run again, and ``explain`` says why."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.campaigns import CampaignCancelled, cancel_campaign, upsert_campaign
from orchestrator.models import Campaign, Message, MessageStatus
from orchestrator.policy import Intent, load_policy, reserve_chunk
from orchestrator.policy import reserve as reserve_module
from orchestrator.policy.explain import explain_customer
from orchestrator.reasons import describe
from orchestrator.settings import REPO_ROOT
from tests.support.ledger import add_messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter
from tests.test_policy_reserve import add_customers

POLICY = load_policy(REPO_ROOT / "policy.yaml")
NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)


def new_campaign(name: str = "spring") -> int:
    campaign_id = upsert_campaign(name, "all", "marketing", "promo", None, "now")
    assert campaign_id is not None
    return campaign_id


def intents(ids: list[int], campaign_id: int | None, key: str = "campaign:spring") -> list[Intent]:
    return [Intent(customer_id=i, topic="marketing", template="promo", dedupe_key=key,
                   campaign_id=campaign_id) for i in ids]


def campaign_rows(campaign_id: int) -> dict[int, Message]:
    with session_scope() as s:
        rows = s.exec(select(Message).where(Message.campaign_id == campaign_id)).all()
        return {m.customer_id: m for m in rows}


def cancel(name: str, *extra: str):
    return CliRunner().invoke(app, ["campaign", "cancel", name, *extra])


def test_cancel_stops_what_has_not_gone_out_and_explain_says_why(db_url):
    campaign_id = new_campaign()
    ids = add_customers(5)
    reserve_chunk(intents(ids, campaign_id), now=NOON, policy=POLICY)
    rows = campaign_rows(campaign_id)
    # One went out, one is being sent, one waits for its slot; two are planned.
    set_to = {ids[0]: MessageStatus.sent, ids[1]: MessageStatus.sending, ids[2]: MessageStatus.deferred}
    with session_scope() as s:
        for cid, status in set_to.items():
            s.execute(update(Message).where(Message.id == rows[cid].id).values(status=status))

    result = cancel("spring", "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["cancelled"] == 3 and answer["already_cancelled"] is False
    assert answer["statuses"] == {"sent": 1, "sending": 1, "cancelled": 3}
    after = campaign_rows(campaign_id)
    assert {cid: m.status for cid, m in after.items()} == {
        ids[0]: "sent", ids[1]: "sending", ids[2]: "cancelled", ids[3]: "cancelled", ids[4]: "cancelled"}
    assert after[ids[3]].reason_codes[-1] == "cancelled:campaign"
    assert after[ids[3]].reason_codes[:-1] == rows[ids[3]].reason_codes  # the decision's reasons stay
    with session_scope() as s:
        assert s.exec(select(Campaign).where(Campaign.id == campaign_id)).one().status == "cancelled"
        [latest] = explain_customer(s, ids[2])[:1]
    assert latest.status == "cancelled"
    assert describe(latest.reason_codes[-1]) == "cancelled: an operator stopped the campaign"
    assert latest.reason_text == f"{rows[ids[2]].reason_text} Cancelled: an operator stopped the campaign."

    again = cancel("spring")
    assert again.exit_code == 0, again.output
    text = " ".join(again.stdout.split())
    assert "Campaign spring was already cancelled: 0 message(s)" in text
    assert "(3 cancelled in all)" in text and "1 had already been sent" in text
    assert "1 were being sent at that moment and may still go out" in text

    unknown = cancel("no-such-campaign")
    assert unknown.exit_code == 1 and "no campaign named 'no-such-campaign'" in unknown.output


def test_a_cancelled_campaign_reserves_nothing_more_and_cannot_run_again(db_url):
    campaign_id = new_campaign()
    ids = add_customers(4)
    assert cancel("spring").exit_code == 0

    result = reserve_chunk(intents(ids[:2], campaign_id) + intents(ids[2:], None, key="receipt"),
                           now=NOON, policy=POLICY)

    assert result.counts.get("cancelled") == 2  # counted, not written
    assert campaign_rows(campaign_id) == {}
    assert len([r for r in result.rows if r.message_id is not None]) == 2  # other work goes on
    with pytest.raises(CampaignCancelled, match="was cancelled: it cannot run again"):
        upsert_campaign("spring", "all", "marketing", "promo", None, "now")
    with session_scope() as s:  # a run that was still going does not mark it dispatched afterwards
        assert s.exec(select(Campaign).where(Campaign.id == campaign_id)).one().status == "cancelled"


@pytest.mark.postgres
def test_a_cancel_during_a_reservation_waits_for_it_and_cancels_what_it_reserved(pg_url, monkeypatch):
    campaign_id = new_campaign()
    ids = add_customers(20)
    outcome: dict[str, Any] = {}
    paused, go_on = threading.Event(), threading.Event()
    load_facts = reserve_module.load_facts

    def pausing(*args: Any, **kwargs: Any) -> Any:  # after the campaign was read, before any insert
        paused.set()
        go_on.wait(10)
        return load_facts(*args, **kwargs)

    monkeypatch.setattr(reserve_module, "load_facts", pausing)
    reserver = threading.Thread(target=lambda: outcome.update(
        reserved=reserve_chunk(intents(ids, campaign_id), now=NOON, policy=POLICY)))
    reserver.start()
    assert paused.wait(10)
    canceller = threading.Thread(target=lambda: outcome.update(cancel=cancel_campaign("spring")))
    canceller.start()
    canceller.join(1.0)
    waited = canceller.is_alive()  # the cancel waits for the reservation's transaction
    go_on.set()
    reserver.join(30)
    canceller.join(30)

    assert waited
    assert outcome["reserved"].count("planned") == 20
    assert outcome["cancel"].cancelled == 20
    assert {m.status for m in campaign_rows(campaign_id).values()} == {"cancelled"}


def test_a_message_that_was_being_sent_at_the_cancel_and_came_back_for_a_retry_is_cancelled(
        db_url, tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)
    campaign_id = new_campaign()
    ids = add_customers(2)
    in_flight, _ = add_messages(ids, template="promo", dedupe="campaign:spring", campaign_id=campaign_id)
    with session_scope() as s:
        s.execute(update(Message).where(Message.id == in_flight).values(status=MessageStatus.sending))
    assert cancel("spring").exit_code == 0
    assert campaign_rows(campaign_id)[ids[0]].status == "sending"  # it may be at the provider: left alone
    with session_scope() as s:  # the provider said "later": the message waits for a retry
        s.execute(update(Message).where(Message.id == in_flight).values(status=MessageStatus.deferred))
    adapter = RecordingAdapter("email")

    report = dispatch_due(adapters={"email": adapter})

    assert adapter.sent == [] and report.total("sent") == 0
    assert campaign_rows(campaign_id)[ids[1]].status == "cancelled"  # never claimed: cancelled at once
    again = campaign_rows(campaign_id)[ids[0]]
    assert again.status == "cancelled" and again.reason_codes[-1] == "cancelled:campaign"
