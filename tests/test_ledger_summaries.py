"""Where a campaign's or notice's rows stand, counted by the database (``ledger.summaries``)."""

from __future__ import annotations

from orchestrator.db import session_scope
from orchestrator.ledger.summaries import ledger_summary
from orchestrator.models import Campaign, MessageStatus
from tests.support.ledger import add_customers, add_messages


def test_rows_are_counted_per_channel_status_and_standing_reason_with_distinct_customers(db_url):
    with session_scope() as s:
        campaign = Campaign(name="spring", segment="all", topic="marketing", template="promo")
        other = Campaign(name="autumn", segment="all", topic="marketing", template="promo")
        s.add_all([campaign, other])
        s.flush()
        campaign_id, other_id = campaign.id, other.id
    ada, bo, cy = add_customers(3)
    sent = MessageStatus.sent
    add_messages([ada, bo], template="promo", status=sent, campaign_id=campaign_id, dedupe="a",
                 reason_codes=["route:email", "preference:email"])
    add_messages([cy], template="promo", status=sent, campaign_id=campaign_id, dedupe="b",
                 reason_codes=["route:email"])
    add_messages([ada], channel="sms", template="promo", status=MessageStatus.suppressed,
                 campaign_id=campaign_id, dedupe="c", reason_codes=["route:sms", "consent:opted_out"])
    add_messages([bo, cy], channel="sms", template="promo", status=MessageStatus.deferred,
                 campaign_id=campaign_id, dedupe="d", reason_codes=["quiet_hours:sms"])
    add_messages([bo], channel="sms", template="promo", status=MessageStatus.deferred,
                 campaign_id=campaign_id, dedupe="e", reason_codes=[], attempts=1,
                 last_error="transient:rate_limited: slow down")
    add_messages([ada, bo, cy], template="promo", status=sent, campaign_id=other_id, dedupe="f")

    summary = ledger_summary(campaign_id=campaign_id)

    assert summary.customers == 3
    assert dict(summary.rows) == {
        ("email", "sent", ""): 3,
        ("sms", "suppressed", "consent:opted_out"): 1,
        ("sms", "deferred", "quiet_hours:sms"): 2,
        ("sms", "deferred", "retry:transient"): 1,
    }
    assert summary.as_dict()["customers"] == 3
    assert ledger_summary(campaign_id=campaign_id, dedupe_prefix="d-").customers == 2


def test_the_summary_neither_waits_for_nor_holds_up_sqlites_writer(sqlite_url):
    """A campaign's closing summary reads the last commit while another run (an outage notice)
    holds the write lock, instead of queueing behind it."""
    import threading

    with session_scope() as s:
        campaign = Campaign(name="spring", segment="all", topic="marketing", template="promo")
        s.add(campaign)
        s.flush()
        campaign_id = campaign.id
    ada, bo = add_customers(2)
    add_messages([ada], template="promo", status=MessageStatus.sent, campaign_id=campaign_id)
    writing, summarised = threading.Event(), threading.Event()
    counted: list[int] = []

    def writer() -> None:
        with session_scope() as s:
            s.add(Campaign(name="outage-write", segment="all", topic="outage", template="promo"))
            s.flush()  # BEGIN IMMEDIATE: the write lock is held until the commit
            writing.set()
            summarised.wait(20)

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(10)
    reader = threading.Thread(
        target=lambda: counted.append(ledger_summary(campaign_id=campaign_id).customers))
    reader.start()
    reader.join(5)
    finished_while_locked = not reader.is_alive()
    summarised.set()
    reader.join(30)
    thread.join(30)
    assert finished_while_locked and counted == [1]
