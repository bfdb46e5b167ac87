"""The campaign flow end to end: real SDKs against the fake providers, under one Prefect test server."""

from __future__ import annotations

import json
import os
import sys
import threading
from datetime import timedelta

import pytest
from prefect import task
from sqlalchemy import update
from typer.testing import CliRunner

import flows.pipeline as pipeline
from flows.campaign import campaign
from flows.dispatch_due import dispatch_due_flow
from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.models import Message, MessageStatus, utcnow
from orchestrator.settings import get_settings
from tests.support.flow_world import (
    MARKETING_FACTS,
    add_customer,
    artifacts,
    by_customer,
    flow_run,
    ledger,
    task_runs,
    use_fake_providers,
)
from tests.support.zones import NIGHT


@pytest.fixture
def providers(monkeypatch, fake_sendgrid, fake_twilio):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio)
    return fake_sendgrid, fake_twilio


def run_campaign(name: str = "spring", **overrides):
    parameters = dict(name=name, segment="all", template="spring_sale", data=MARKETING_FACTS, chunk_size=2)
    return campaign(**{**parameters, **overrides}, return_state=True)


def sends(fake, rows) -> dict[int, int]:
    """Requests the fake provider received per ledger message."""
    return {m.id: len(fake.requests_for(m.id)) for m in rows}


def test_a_campaign_sends_each_customer_once_respecting_quiet_hours_and_wishes(prefect_harness, sqlite_url,
                                                                              providers):
    sendgrid, twilio = providers
    ada = add_customer("ada", email="ada@example.com")
    bo = add_customer("bo", email="bo@example.com")
    night_owl = add_customer("owl", phone="+14155550101", hour=NIGHT)  # SMS only, and it is night there
    hermit = add_customer("hermit", email="hermit@example.com", do_not_contact=True)

    state = run_campaign()

    assert state.is_completed()
    rows = by_customer(ledger("campaign:spring"))
    assert {cid: rows[cid].status for cid in rows} == {
        ada: "sent", bo: "sent", night_owl: "deferred", hermit: "suppressed"}
    assert sends(sendgrid, [rows[ada], rows[bo]]) == {rows[ada].id: 1, rows[bo].id: 1}
    assert twilio.requests == [] and sendgrid.requests_to("hermit@example.com") == []
    assert "quiet_hours:sms" in rows[night_owl].reason_codes and rows[night_owl].send_at > utcnow()
    assert rows[hermit].reason_codes == ["do_not_contact"]

    result = state.result()
    assert result["reserved"] == {"planned": 2, "deferred": 1, "suppressed": 1}
    assert result["dispatched"]["sent"] == 2

    # Prefect: named runs, one reserve task per chunk of two customers (never one per message).
    run_id = state.state_details.flow_run_id
    assert flow_run(run_id).name == "campaign-spring"
    names = sorted(t.name for t in task_runs(run_id))
    reserve_tasks = [n for n in names if n.startswith("reserve-")]
    assert reserve_tasks == [f"reserve-{ada}-to-{bo}", f"reserve-{night_owl}-to-{hermit}"]
    assert {"marketing", "campaign:spring"} <= set(flow_run(run_id).tags)  # the run, not each task
    assert not any(t.tags for t in task_runs(run_id))
    found = artifacts(run_id)
    assert {"campaign-spring-progress", "campaign-spring-outcomes", "campaign-spring-summary"} <= set(found)
    assert found["campaign-spring-progress"].data == 100.0
    table = json.loads(found["campaign-spring-outcomes"].data)
    assert {"channel": "sms", "status": "deferred", "reason": "quiet_hours:sms", "messages": 1} in table
    assert "ada@example.com" not in found["campaign-spring-summary"].data

    # A re-run of the same campaign finds every customer in the ledger and sends nothing.
    again = run_campaign()
    assert again.result()["reserved"] == {"duplicate": 4}
    assert sends(sendgrid, [rows[ada], rows[bo]]) == {rows[ada].id: 1, rows[bo].id: 1}
    assert len(sendgrid.requests) == 2


def test_caps_hold_across_two_campaigns(prefect_harness, sqlite_url, providers):
    sendgrid, _ = providers
    ada = add_customer("ada", email="ada@example.com")

    run_campaign("first")
    second = run_campaign("second", template="product_launch",
                          data={"feature_name": "Shared workspaces", "feature_summary": "work together",
                                "learn_more_url": "https://example.com/new"})

    assert second.is_completed()
    (row,) = ledger("campaign:second").values()
    assert row.customer_id == ada and row.status == MessageStatus.suppressed
    assert "cap:marketing-2d" in row.reason_codes  # marketing: at most one per two days
    assert len(sendgrid.requests) == 1


def test_provider_errors_defer_messages_and_the_sweeper_sends_them_after_retry_after(
        prefect_harness, sqlite_url, providers, monkeypatch):
    sendgrid, _ = providers
    monkeypatch.setenv("ORCH_SENDGRID_BATCH_SIZE", "1")  # a request per message: each meets its own fault
    get_settings.cache_clear()
    sendgrid.reset_in = 900  # the 429 says: come back in 15 minutes
    sendgrid.fail_next(1, "rate_limit")
    sendgrid.fail_next(1, "server_error")
    add_customer("ada", email="ada@example.com")
    add_customer("bo", email="bo@example.com")
    started = utcnow()

    result = run_campaign().result()

    assert result["dispatched"]["deferred"] == 2
    rows = ledger("campaign:spring")
    assert {m.status for m in rows.values()} == {MessageStatus.deferred}
    waits = sorted((m.send_at - started).total_seconds() for m in rows.values())
    assert 55 <= waits[0] <= 125  # 500: exponential backoff starts at a minute
    assert waits[1] >= 880  # 429: the provider's reset time wins over the backoff
    assert dispatch_due_flow(return_state=True).result()["sent"] == 0  # not due yet: nothing is sent early

    with session_scope() as s:  # the clock moves on
        s.execute(update(Message).values(send_at=utcnow() - timedelta(seconds=1)))
    assert dispatch_due_flow(return_state=True).result()["sent"] == 2
    assert sends(sendgrid, rows.values()) == {m: 2 for m in rows}  # one failed attempt, one success each
    assert {m.status for m in ledger().values()} == {MessageStatus.sent}


def test_a_provider_that_is_down_leaves_messages_deferred_not_lost(prefect_harness, sqlite_url, providers):
    sendgrid, _ = providers
    add_customer("ada", email="ada@example.com")
    sendgrid.stop()  # connection refused

    result = run_campaign().result()

    assert result["dispatched"] == {"sent": 0, "deferred": 1, "failed": 0, "suppressed": 0, "reconcile": 0}
    (row,) = ledger("campaign:spring").values()
    assert row.status == MessageStatus.deferred and row.attempts == 1 and row.send_at > utcnow()
    assert result["ledger"]["reasons"]["deferred"] == {"retry:transient": 1}


@task(name="dispatch-messages")
def crashing_dispatch(label: str = "due", **_kwargs):
    raise SystemError("the worker died before sending")


def test_a_crash_between_reservation_and_send_never_sends_twice(prefect_harness, sqlite_url, providers,
                                                                  monkeypatch):
    sendgrid, _ = providers
    for name in ("ada", "bo", "cy", "di"):
        add_customer(name, email=f"{name}@example.com")
    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "dispatch_task", crashing_dispatch)
        assert run_campaign().is_failed()
    rows = ledger("campaign:spring")
    assert {m.status for m in rows.values()} == {MessageStatus.planned} and sendgrid.requests == []

    # Two of them were claimed (``sending``) by a dispatcher that died before recording the outcome:
    # the provider may or may not have them, so they must never be sent blind.
    claimed = sorted(rows)[:2]
    with session_scope() as s:
        s.execute(update(Message).where(Message.id.in_(claimed))
                  .values(status=MessageStatus.sending, updated_at=utcnow() - timedelta(hours=1)))

    assert run_campaign().result()["reserved"] == {"duplicate": 4}
    assert sends(sendgrid, rows.values()) == {m: 0 if m in claimed else 1 for m in rows}
    assert dispatch_due_flow(return_state=True).result()["reconcile"] == 2
    after = ledger("campaign:spring")
    assert [after[m].status for m in claimed] == [MessageStatus.reconcile] * 2
    assert sends(sendgrid, rows.values()) == {m: 0 if m in claimed else 1 for m in rows}


def test_a_dry_run_plans_and_writes_nothing(prefect_harness, sqlite_url, providers):
    sendgrid, _ = providers
    add_customer("ada", email="ada@example.com")
    add_customer("owl", phone="+14155550101", hour=NIGHT)

    state = run_campaign(dry_run=True)

    result = state.result()
    assert result["dry_run"] and result["outcomes"] == {"send": 1, "defer": 1}
    assert ledger() == {} and sendgrid.requests == []
    plan = json.loads(artifacts(state.state_details.flow_run_id)["campaign-spring-plan"].data)
    assert {"outcome": "reason quiet_hours:sms", "customers": 1} in plan


def test_bad_parameters_are_refused_before_anything_runs(sqlite_url):
    add_customer("ada", email="ada@example.com")
    runner = CliRunner()
    command = ["campaign", "run", "x", "--segment", "all", "--template", "spring_sale"]
    missing = runner.invoke(app, [*command, "--data", "code=SPRING20"])
    assert missing.exit_code == 2 and "offer, ends_on, shop_url" in missing.output
    as_other_topic = runner.invoke(app, [*command, "--sample-data", "--topic", "transactional"])
    assert as_other_topic.exit_code == 2 and "marketing" in as_other_topic.output
    bad_time = runner.invoke(app, [*command, "--sample-data", "--send-time", "teatime"])
    assert bad_time.exit_code == 2 and "send_time" in bad_time.output
    assert ledger() == {}


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def observe_campaign(monkeypatch, probe) -> dict[str, set[int]]:
    """Runs a campaign to three customers; what ``probe()`` returned in its chunk tasks (reserving)
    and its provider calls."""
    for name in ("ada", "bo", "cy"):
        add_customer(name, email=f"{name}@example.com")
    seen: dict[str, set[int]] = {"reserve": set(), "provider call": set()}

    def observed(where: str, real):
        def call(*args, **kwargs):
            seen[where].add(probe())
            return real(*args, **kwargs)
        return call

    from channels.sendgrid.adapter import SendGridEmailAdapter

    monkeypatch.setattr(pipeline, "reserve_chunk", observed("reserve", pipeline.reserve_chunk))
    monkeypatch.setattr(SendGridEmailAdapter, "_send_request",
                        observed("provider call", SendGridEmailAdapter._send_request))
    assert run_campaign().is_completed()
    return seen


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread priorities are Linux's")
@pytest.mark.parametrize("setting", [None, "0"])
def test_a_campaign_works_below_the_cpu_priority_of_urgent_work(prefect_harness, sqlite_url, providers,
                                                                 monkeypatch, setting):
    """Chunk tasks and provider calls of a campaign run at a lower CPU priority (10 niceness steps by
    default), so an outage notice started meanwhile on the same machine gets the CPU first; the
    caller's own priority is as before afterwards."""
    if setting is not None:
        monkeypatch.setenv("ORCH_BULK_CPU_NICENESS", setting)
        get_settings.cache_clear()
    before = _niceness()

    seen = observe_campaign(monkeypatch, _niceness)

    lowered = min(19, before + (10 if setting is None else 0))
    assert seen == {"reserve": {lowered}, "provider call": {lowered}}
    assert _niceness() == before


def test_a_campaign_runs_with_the_garbage_collector_looking_less_often(prefect_harness, sqlite_url, providers,
                                                                      monkeypatch):
    """Chunk tasks and provider calls see the pipeline's young-generation threshold
    (``ORCH_PIPELINE_GC_THRESHOLD``); Python's own is back when the campaign ends."""
    import gc

    monkeypatch.setenv("ORCH_PIPELINE_GC_THRESHOLD", "40000")
    get_settings.cache_clear()
    before = gc.get_threshold()

    seen = observe_campaign(monkeypatch, lambda: gc.get_threshold()[0])

    assert seen == {"reserve": {40_000}, "provider call": {40_000}}
    assert gc.get_threshold() == before


def test_a_campaign_waits_between_chunks_while_urgent_work_runs(prefect_harness, sqlite_url, providers,
                                                                 monkeypatch):
    """An outage notice marks the database while it runs (``pacing.urgency``): a campaign started or
    running meanwhile reserves and sends nothing until the mark is cleared, then goes on."""
    from orchestrator.pacing import budget, urgency

    sendgrid, _ = providers
    for name in ("ada", "bo", "cy"):
        add_customer(name, email=f"{name}@example.com")
    looked = threading.Event()
    real_read = budget.held_until

    def read(name, **kwargs):
        until = real_read(name, **kwargs)
        if until > 0:
            looked.set()  # a chunk task found urgent work running
        return until

    monkeypatch.setattr(budget, "held_until", read)
    urgency.announce(seconds=120)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(run_campaign()))
    worker.start()
    assert looked.wait(60), "the campaign did not look for urgent work"
    assert ledger() == {} and sendgrid.requests == []  # nothing reserved, nothing sent
    urgency.done()
    worker.join(120)
    assert outcome and outcome[0].is_completed()
    assert {m.status for m in ledger().values()} == {MessageStatus.sent}
    assert len(sendgrid.requests) >= 1


def test_a_scheduled_campaign_cancelled_before_its_time_sends_nothing_and_cannot_run_again(
        prefect_harness, sqlite_url, providers):
    sendgrid, twilio = providers
    add_customer("ada", email="ada@example.com")
    add_customer("bo", email="bo@example.com")
    add_customer("cy", phone="+14155550102")
    later = (utcnow() + timedelta(hours=3)).isoformat()

    result = run_campaign(send_time=later).result()

    assert result["dispatched"].get("sent", 0) == 0
    assert {m.status for m in ledger("campaign:spring").values()} == {MessageStatus.deferred}
    cancelled = CliRunner().invoke(app, ["campaign", "cancel", "spring"])
    assert cancelled.exit_code == 0, cancelled.output
    assert "3 message(s) that had not gone out now never will" in " ".join(cancelled.stdout.split())

    with session_scope() as s:  # its time comes
        s.execute(update(Message).values(send_at=utcnow() - timedelta(seconds=1)))
    assert dispatch_due_flow(return_state=True).result()["sent"] == 0
    assert sendgrid.requests == [] and twilio.requests == []
    rows = ledger("campaign:spring")
    assert {(m.status, m.reason_codes[-1]) for m in rows.values()} == {("cancelled", "cancelled:campaign")}

    again = run_campaign(send_time="now")
    assert again.is_failed() and "cannot run again" in str(again.message)
    refused = CliRunner().invoke(app, ["campaign", "run", "spring", "--segment", "all", "--template",
                                       "spring_sale", "--sample-data"])  # refused before Prefect starts
    assert refused.exit_code == 2 and "was cancelled: it cannot run again" in " ".join(refused.output.split())
    assert ledger("campaign:spring").keys() == rows.keys()  # nothing new reserved


def test_a_campaign_cancelled_while_it_runs_stops_at_its_next_chunk(prefect_harness, sqlite_url, providers,
                                                                    monkeypatch):
    from orchestrator.ledger.campaigns import cancel_campaign

    for i in range(12):
        add_customer(f"c{i}", email=f"c{i}@example.com")
    calls: list[int] = []
    one_at_a_time = threading.Lock()
    reserve_chunk = pipeline.reserve_chunk

    def reserve_then_cancel(intents):
        with one_at_a_time:  # the first chunk's reservation and the cancel, before any other chunk
            result = reserve_chunk(intents)
            calls.append(len(intents))
            if len(calls) == 1:
                cancel_campaign("spring")
            return result

    monkeypatch.setattr(pipeline, "reserve_chunk", reserve_then_cancel)

    result = run_campaign(chunk_size=1).result()

    # 12 chunks of one customer; at most the window of 4 was reserving when the cancel came.
    assert len(calls) <= 5, calls
    rows = ledger("campaign:spring")
    assert len(rows) == 1 and {m.status for m in rows.values()} == {MessageStatus.cancelled}
    assert result["reserved"].get("cancelled", 0) == len(calls) - 1  # counted, not written
