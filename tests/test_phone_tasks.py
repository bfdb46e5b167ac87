"""Phone tasks: calls for human agents with SLAs, claiming, closing, overdue and escalation."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from channels.base import OutboundMessage, ResultStatus
from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.local_channels.phone import PhoneTaskAdapter
from orchestrator.models import Customer, Message, MessageStatus, PhoneTask, utcnow
from orchestrator.phone_tasks import (
    TaskError,
    claim_task,
    complete_task,
    escalate_overdue,
    is_overdue,
    list_tasks,
    sla_for,
)


def ledger_message(topic: str = "support", channel: str = "phone", phone: str = "+14155550123") -> Message:
    """A customer and a ledger row on the phone channel, as the policy would reserve them."""
    with session_scope() as session:
        customer = Customer(external_id=f"c-{utcnow().timestamp()}-{topic}", name="Ada Lovelace", phone=phone)
        session.add(customer)
        session.flush()
        message = Message(
            dedupe_key=f"{topic}-call",
            customer_id=customer.id,
            topic=topic,
            channel=channel,
            tone="empathetic",
            template="complaint_acknowledgement",
            status=MessageStatus.sending.value,
            priority=60,
            data={"ticket": "T-1"},
        )
        session.add(message)
        session.flush()
        return message


def call(message: Message, **kwargs) -> OutboundMessage:
    return OutboundMessage(
        message_id=message.id,
        channel="phone",
        to=str(message.customer_id),
        body=kwargs.pop("body", "Hello Ada, I am calling about your ticket T-1."),
        topic=message.topic,
        customer_id=message.customer_id,
        priority=message.priority,
        **kwargs,
    )


def test_a_phone_message_becomes_one_task_due_within_its_topics_sla(db_url):
    message = ledger_message("security")
    before = utcnow()
    adapter = PhoneTaskAdapter()
    (result,) = adapter.send([call(message, subject="Suspicious sign-in")])
    (again,) = adapter.send([call(message)])  # a retry of the same message

    assert result.status is ResultStatus.accepted and again.provider_message_id == result.provider_message_id
    with session_scope() as session:
        (task,) = session.scalars(select(PhoneTask)).all()
    assert result.provider_message_id == f"task-{task.id}"
    assert task.reason == "Suspicious sign-in" and task.script.startswith("Hello Ada")
    assert task.status == "open" and task.priority == 60 and task.message_id == message.id
    assert before + timedelta(hours=1) <= task.due_at <= utcnow() + timedelta(hours=1)


def test_a_deadline_on_the_message_wins_over_the_sla(sqlite_url):
    message = ledger_message("loyalty")
    PhoneTaskAdapter().send([call(message, due_in_seconds=600)])
    with session_scope() as session:
        task = session.scalars(select(PhoneTask)).one()
    assert task.due_at - task.created_at == timedelta(seconds=600)
    assert sla_for("loyalty") == timedelta(days=3) and sla_for("outage") == timedelta(hours=2)
    assert sla_for("outage", {"outage": timedelta(minutes=30)}) == timedelta(minutes=30)


def test_a_call_without_customer_or_script_is_rejected(sqlite_url):
    message = ledger_message()
    no_script, no_customer = PhoneTaskAdapter().send(
        [call(message, body="  "), OutboundMessage(message_id=999, channel="phone", to="", body="script")]
    )
    assert no_script.status is ResultStatus.permanent and "script" in no_script.error.detail
    assert no_customer.status is ResultStatus.permanent and "customer" in no_customer.error.detail


def test_overdue_tasks_are_reported(db_url):
    urgent, relaxed = ledger_message("security"), ledger_message("loyalty")
    PhoneTaskAdapter().send([call(urgent), call(relaxed)])
    later = utcnow() + timedelta(hours=2)
    with session_scope() as session:
        overdue = list_tasks(session, overdue=True, now=later)
        assert [t.message_id for t in overdue] == [urgent.id]
        assert is_overdue(overdue[0], later) and not is_overdue(overdue[0])
        assert list_tasks(session, overdue=True) == []


def test_a_task_is_claimed_by_one_agent_and_closed_with_an_outcome(db_url):
    message = ledger_message()
    PhoneTaskAdapter().send([call(message)])
    with session_scope() as session:
        task_id = session.scalars(select(PhoneTask.id)).one()
        assert claim_task(session, task_id, "grace").assignee == "grace"
    with session_scope() as session, pytest.raises(TaskError, match="already claimed by grace"):
        claim_task(session, task_id, "alan")
    with session_scope() as session, pytest.raises(TaskError, match="outcome note is required"):
        complete_task(session, task_id, "   ")
    with session_scope() as session:
        task = complete_task(session, task_id, "Customer happy, refund issued", no_answer=False)
        assert (task.status, task.outcome) == ("done", "Customer happy, refund issued")
    with session_scope() as session, pytest.raises(TaskError, match="already closed"):
        complete_task(session, task_id, "again")
    with session_scope() as session, pytest.raises(TaskError, match="no phone task 424242"):
        claim_task(session, 424242, "grace")


@pytest.mark.postgres
def test_two_agents_racing_for_a_task_cannot_both_get_it(pg_url):
    message = ledger_message()
    PhoneTaskAdapter().send([call(message)])
    with session_scope() as session:
        task_id = session.scalars(select(PhoneTask.id)).one()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def agent(name: str) -> None:
        barrier.wait()
        try:
            with session_scope() as session:
                claim_task(session, task_id, name)
            outcomes.append(name)
        except TaskError:
            outcomes.append("refused")

    threads = [threading.Thread(target=agent, args=(f"agent-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("refused") == 3
    with session_scope() as session:
        assert session.get(PhoneTask, task_id).assignee in outcomes


def test_escalation_marks_overdue_open_tasks_once_with_a_supervisor_note(db_url):
    late, on_time = ledger_message("security"), ledger_message("loyalty")
    PhoneTaskAdapter().send([call(late), call(on_time)])
    later = utcnow() + timedelta(hours=3)
    with session_scope() as session:
        report = escalate_overdue(session, supervisor="team-lead", now=later)
    assert [e.topic for e in report] == ["security"]
    assert report[0].overdue_by >= timedelta(hours=1, minutes=59)
    with session_scope() as session:
        statuses = {t.topic: (t.status, t.outcome) for t in session.scalars(select(PhoneTask))}
        assert escalate_overdue(session, now=later) == []  # nothing is escalated twice
    assert statuses["security"][0] == "escalated" and "escalated to team-lead" in statuses["security"][1]
    assert statuses["loyalty"] == ("open", None)


def test_escalation_can_fall_back_to_another_channel_through_the_ledger(db_url):
    message = ledger_message("support")
    PhoneTaskAdapter().send([call(message)])
    later = utcnow() + timedelta(days=1)
    with session_scope() as session:
        (item,) = escalate_overdue(session, action="fallback", fallback_channel="email", now=later)
    with session_scope() as session:
        fallback = session.get(Message, item.fallback_message_id)
        assert (fallback.channel, fallback.status, fallback.template) == (
            "email",
            "planned",
            "complaint_acknowledgement",
        )
        assert fallback.customer_id == message.customer_id and fallback.data == {"ticket": "T-1"}
        assert fallback.reason_codes == ["escalation:phone_overdue", "fallback:phone->email"]
        assert "fallback message planned on email" in session.get(PhoneTask, item.task_id).outcome


def test_the_tasks_cli_lists_claims_and_closes(sqlite_url):
    message = ledger_message("support")
    PhoneTaskAdapter().send([call(message)])
    runner = CliRunner()

    listed = runner.invoke(app, ["tasks", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert row["phone"] == "+***23" and row["status"] == "open" and not row["overdue"]

    claimed = runner.invoke(app, ["tasks", "claim", str(row["id"]), "--agent", "grace"])
    assert claimed.exit_code == 0 and "+14155550123" in claimed.output and "ticket T-1" in claimed.output
    refused = runner.invoke(app, ["tasks", "claim", str(row["id"]), "--agent", "alan"])
    assert refused.exit_code == 1 and "already claimed by grace" in refused.output

    done = runner.invoke(app, ["tasks", "done", str(row["id"]), "--outcome", "Voicemail", "--no-answer"])
    assert done.exit_code == 0 and "no_answer" in done.output
    assert json.loads(runner.invoke(app, ["tasks", "list", "--json"]).output) == []
    assert runner.invoke(app, ["tasks", "list", "--overdue"]).output.strip() == "No overdue tasks."


def test_the_escalate_command_reports_what_it_escalated(sqlite_url):
    message = ledger_message("security")
    PhoneTaskAdapter().send([call(message, due_in_seconds=0)])
    runner = CliRunner()
    overdue = json.loads(runner.invoke(app, ["tasks", "list", "--overdue", "--json"]).output)
    assert [r["overdue"] for r in overdue] == [True]
    result = runner.invoke(app, ["tasks", "escalate-overdue", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["action"] == "supervisor" and row["topic"] == "security"
    bad = runner.invoke(app, ["tasks", "escalate-overdue", "--action", "pager"])
    assert bad.exit_code == 2 and "--action must be" in bad.output


def test_the_queue_shows_the_incident_or_campaign_of_each_call(sqlite_url, monkeypatch):
    from orchestrator.cli.output import console
    from orchestrator.models import Campaign, Incident

    monkeypatch.setattr(console, "width", 250)
    with session_scope() as session:
        incident = Incident(incident_key="INC-7")
        campaign = Campaign(name="winback-2026", segment="all", topic="support", template="t")
        session.add_all([incident, campaign])
        session.flush()
        incident_id, campaign_id = incident.id, campaign.id
    outage, winback, plain = ledger_message("outage"), ledger_message("support"), ledger_message("feedback")
    with session_scope() as session:
        for message, values in ((outage, {"incident_id": incident_id, "data": {"status": "identified"}}),
                                (winback, {"campaign_id": campaign_id})):
            row = session.get(Message, message.id)
            for key, value in values.items():
                setattr(row, key, value)
    PhoneTaskAdapter().send([call(outage), call(winback), call(plain)])
    runner = CliRunner()

    rows = {r["message_id"]: r for r in json.loads(runner.invoke(app, ["tasks", "list", "--json"]).output)}
    assert rows[outage.id]["for"] == "incident INC-7 (identified)"
    assert rows[winback.id]["for"] == "campaign winback-2026"
    assert rows[plain.id]["for"] == "complaint_acknowledgement (feedback-call)"
    table = runner.invoke(app, ["tasks", "list"]).output
    assert "incident INC-7 (identified)" in table and "campaign winback-2026" in table
    claimed = runner.invoke(app, ["tasks", "claim", str(rows[outage.id]["id"]), "--agent", "grace"])
    assert "for incident INC-7 (identified)" in " ".join(claimed.output.split())


def test_resolving_an_incident_closes_its_calls_not_started_and_rewrites_claimed_ones(db_url):
    from orchestrator.models import Incident
    from orchestrator.phone_tasks import close_calls_for_incident

    with session_scope() as session:
        incidents = [Incident(incident_key="INC-1"), Incident(incident_key="INC-2")]
        session.add_all(incidents)
        session.flush()
        ours, other = (i.id for i in incidents)
    messages = [ledger_message("outage") for _ in range(4)]
    with session_scope() as session:
        for message, incident in zip(messages, (ours, ours, ours, other), strict=True):
            session.get(Message, message.id).incident_id = incident
    PhoneTaskAdapter().send([call(m, due_in_seconds=0) for m in messages])
    with session_scope() as session:
        by_message = {t.message_id: t.id for t in list_tasks(session)}
        claim_task(session, by_message[messages[1].id], "grace")
    with session_scope() as session:
        escalate_overdue(session)  # the first becomes escalated (overdue); escalated calls close too
    note = "UPDATE 14:05 UTC: this incident is resolved."

    with session_scope() as session:
        assert close_calls_for_incident(session, ours, note) == (2, 1)
    with session_scope() as session:
        tasks = {t.message_id: t for t in session.scalars(select(PhoneTask))}
        assert close_calls_for_incident(session, ours, note) == (0, 0)  # once is enough
    first, claimed, third, elsewhere = (tasks[m.id] for m in messages)
    assert (first.status, first.outcome) == ("cancelled", note) and third.status == "cancelled"
    assert claimed.status == "claimed" and claimed.script.startswith(note + "\n\nHello Ada")
    assert elsewhere.status == "escalated" and note not in (elsewhere.outcome or "")  # another incident
