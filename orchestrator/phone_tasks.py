"""The queue of call tasks for human agents (the ``phone`` channel).

A task has a reason, a call script rendered from the templates, a priority and a due time
from the topic's SLA. Agents claim a task, call, and close it as done or no_answer. Open tasks
past their due time are overdue and can be escalated: a note for a supervisor, or a fallback
message on another channel written to the ledger as a new planned message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from orchestrator.db import session_scope
from orchestrator.ledger.reservations import plan_escalation_fallback
from orchestrator.models import Message, PhoneTask, utcnow


class TaskStatus(StrEnum):
    open = "open"
    claimed = "claimed"
    done = "done"
    no_answer = "no_answer"
    escalated = "escalated"
    cancelled = "cancelled"  # closed without a call: no longer needed (the incident was resolved)


ACTIVE = (TaskStatus.open, TaskStatus.claimed, TaskStatus.escalated)  # still waiting for a call

# How soon a customer should be called, per topic. The policy may override these.
DEFAULT_SLA: dict[str, timedelta] = {
    "security": timedelta(hours=1),
    "outage": timedelta(hours=2),
    "transactional": timedelta(hours=4),
    "support": timedelta(hours=4),
    "complaint": timedelta(hours=4),
    "feedback": timedelta(days=2),
    "loyalty": timedelta(days=3),
    "marketing": timedelta(days=5),
}
FALLBACK_SLA = timedelta(days=1)


class TaskError(ValueError):
    """A task that does not exist or is not in a state that allows the change."""


def sla_for(topic: str, overrides: Mapping[str, timedelta] | None = None) -> timedelta:
    if overrides and topic in overrides:
        return overrides[topic]
    return DEFAULT_SLA.get(topic, FALLBACK_SLA)


def due_at_for(
    topic: str,
    *,
    now: datetime | None = None,
    due_in_seconds: int | None = None,
    overrides: Mapping[str, timedelta] | None = None,
) -> datetime:
    """An explicit ``due_in_seconds`` (e.g. the message's deadline) wins over the topic's SLA."""
    now = now or utcnow()
    if due_in_seconds is not None:
        return now + timedelta(seconds=max(0, due_in_seconds))
    return now + sla_for(topic, overrides)


@dataclass
class TaskRequest:
    customer_id: int
    topic: str
    reason: str
    script: str = ""
    priority: int = 0
    due_in_seconds: int | None = None
    message_id: int | None = None


def open_tasks(
    session: Session,
    requests: list[TaskRequest],
    *,
    now: datetime | None = None,
    sla_overrides: Mapping[str, timedelta] | None = None,
    _retry: bool = True,
) -> list[PhoneTask]:
    """Creates one task per request, in order; a request whose ledger message already has a task
    gets that task back (idempotent on ``message_id``, which is unique in ``phone_task``)."""
    now = now or utcnow()
    existing = _tasks_by_message(session, [r.message_id for r in requests if r.message_id is not None])
    tasks: list[PhoneTask] = []
    try:
        with session.begin_nested():
            for r in requests:
                task = existing.get(r.message_id) if r.message_id is not None else None
                if task is None:
                    task = PhoneTask(
                        customer_id=r.customer_id,
                        message_id=r.message_id,
                        topic=r.topic,
                        reason=r.reason,
                        script=r.script,
                        priority=r.priority,
                        due_at=due_at_for(
                            r.topic, now=now, due_in_seconds=r.due_in_seconds, overrides=sla_overrides
                        ),
                        created_at=now,
                        updated_at=now,
                    )
                    session.add(task)
                    if r.message_id is not None:
                        existing[r.message_id] = task
                tasks.append(task)
    except IntegrityError:
        # Another writer created a task for one of these messages meanwhile: take theirs.
        if not _retry:
            raise
        return open_tasks(session, requests, now=now, sla_overrides=sla_overrides, _retry=False)
    return tasks


def _tasks_by_message(session: Session, message_ids: Iterable[int]) -> dict[int, PhoneTask]:
    ids = list(message_ids)
    if not ids:
        return {}
    rows = session.scalars(select(PhoneTask).where(col(PhoneTask.message_id).in_(ids)))
    return {t.message_id: t for t in rows if t.message_id is not None}


def is_overdue(task: PhoneTask, now: datetime | None = None) -> bool:
    return task.status in (TaskStatus.open, TaskStatus.claimed) and task.due_at < (now or utcnow())


def list_tasks(
    session: Session,
    *,
    statuses: Iterable[str] | None = None,
    overdue: bool = False,
    assignee: str | None = None,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[PhoneTask]:
    """The queue as an agent works it: highest priority first, then the earliest due."""
    now = now or utcnow()
    query = select(PhoneTask)
    if overdue:
        query = query.where(
            col(PhoneTask.status).in_([TaskStatus.open, TaskStatus.claimed]),
            col(PhoneTask.due_at) < now,
        )
    elif statuses is not None:
        query = query.where(col(PhoneTask.status).in_(list(statuses)))
    if assignee is not None:
        query = query.where(col(PhoneTask.assignee) == assignee)
    query = query.order_by(col(PhoneTask.priority).desc(), col(PhoneTask.due_at), col(PhoneTask.id))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def _rows_matched(result: Result[Any]) -> int:
    """How many rows an UPDATE matched (``Session.execute`` is typed as returning any ``Result``;
    for an UPDATE it is the ``CursorResult`` that has the count)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def _get(session: Session, task_id: int) -> PhoneTask:
    task = session.get(PhoneTask, task_id, populate_existing=True)
    if task is None:
        raise TaskError(f"no phone task {task_id}")
    return task


def claim_task(session: Session, task_id: int, agent: str, *, now: datetime | None = None) -> PhoneTask:
    """Gives an open (or escalated) task to ``agent``; two agents can never claim the same task."""
    agent = agent.strip()
    if not agent:
        raise TaskError("an agent name is required to claim a task")
    now = now or utcnow()
    matched = _rows_matched(session.execute(
        update(PhoneTask)
        .where(
            col(PhoneTask.id) == task_id,
            col(PhoneTask.status).in_([TaskStatus.open, TaskStatus.escalated]),
        )
        .values(status=TaskStatus.claimed.value, assignee=agent, updated_at=now)
    ))
    task = _get(session, task_id)
    if matched != 1:
        if task.status == TaskStatus.claimed:
            raise TaskError(f"task {task_id} is already claimed by {task.assignee}")
        raise TaskError(f"task {task_id} is {task.status}; only open or escalated tasks can be claimed")
    return task


def complete_task(
    session: Session,
    task_id: int,
    outcome: str,
    *,
    no_answer: bool = False,
    agent: str | None = None,
    now: datetime | None = None,
) -> PhoneTask:
    """Closes a task as ``done`` (or ``no_answer``) with the agent's notes."""
    outcome = outcome.strip()
    if not outcome:
        raise TaskError("an outcome note is required to close a task")
    now = now or utcnow()
    values: dict[str, object] = {
        "status": (TaskStatus.no_answer if no_answer else TaskStatus.done).value,
        "outcome": outcome,
        "updated_at": now,
    }
    if agent:
        values["assignee"] = agent
    matched = _rows_matched(session.execute(
        update(PhoneTask)
        .where(col(PhoneTask.id) == task_id, col(PhoneTask.status).in_(ACTIVE))
        .values(**values)
    ))
    task = _get(session, task_id)
    if matched != 1:
        raise TaskError(f"task {task_id} is already closed ({task.status})")
    return task


def close_calls_for_incident(session: Session, incident_pk: int, note: str, *,
                             now: datetime | None = None) -> tuple[int, int]:
    """The incident is resolved, so nobody should call about it as if it were still going on:
    calls not started yet are closed (``cancelled``, ``note`` as their outcome) and calls an
    agent has claimed get ``note`` at the top of their script. Returns (closed, rewritten)."""
    now = now or utcnow()
    of_incident = select(col(Message.id)).where(col(Message.incident_id) == incident_pk)
    tasks = list(session.scalars(
        select(PhoneTask).where(col(PhoneTask.message_id).in_(of_incident),
                                col(PhoneTask.status).in_(ACTIVE))
        .order_by(col(PhoneTask.id)).with_for_update()
    ))
    closed = rewritten = 0
    for task in tasks:
        if task.status == TaskStatus.claimed:
            if not task.script.startswith(note):
                task.script, rewritten = f"{note}\n\n{task.script}", rewritten + 1
        else:
            task.status, task.outcome, closed = TaskStatus.cancelled.value, note, closed + 1
        task.updated_at = now
        session.add(task)
    return closed, rewritten


def erase_calls(session: Session, customer_id: int, note: str, *, now: datetime | None = None) -> int:
    """The customer's personal data is being erased: calls not made yet are closed (``cancelled``,
    ``note`` as their outcome), and every call's script and notes, which name and quote the
    customer, are emptied. Returns how many calls there were."""
    now = now or utcnow()
    tasks = list(session.scalars(select(PhoneTask).where(col(PhoneTask.customer_id) == customer_id)
                                 .order_by(col(PhoneTask.id)).with_for_update()))
    for task in tasks:
        if task.status in ACTIVE:
            task.status = TaskStatus.cancelled.value
        task.script, task.outcome, task.updated_at = "", note, now
        session.add(task)
    return len(tasks)


def close_incident_calls(incident_pk: int, note: str) -> tuple[int, int]:
    """``close_calls_for_incident`` in a transaction of its own."""
    with session_scope() as session:
        return close_calls_for_incident(session, incident_pk, note)


class EscalationAction(StrEnum):
    supervisor = "supervisor"  # a note on the task for the supervisor's queue
    fallback = "fallback"  # also plan a message on another channel


@dataclass
class Escalation:
    task_id: int
    customer_id: int
    topic: str
    overdue_by: timedelta
    action: str
    fallback_message_id: int | None = None
    note: str = ""


def escalate_overdue(
    session: Session,
    *,
    action: EscalationAction | str = EscalationAction.supervisor,
    fallback_channel: str = "email",
    supervisor: str = "supervisor",
    now: datetime | None = None,
) -> list[Escalation]:
    """Marks overdue open tasks ``escalated`` and reports them.

    With the ``fallback`` action, a task that came from a ledger message also gets a new planned
    message on ``fallback_channel`` (same template, tone and data; dedupe key
    ``escalation:task-<id>`` so a second run cannot plan it twice); dispatch then sends it.
    Rows are locked (SKIP LOCKED on PostgreSQL) so two runs never escalate the same task.
    """
    action = EscalationAction(action)
    now = now or utcnow()
    due = session.scalars(
        select(PhoneTask)
        .where(col(PhoneTask.status) == TaskStatus.open, col(PhoneTask.due_at) < now)
        .order_by(col(PhoneTask.priority).desc(), col(PhoneTask.due_at))
        .with_for_update(skip_locked=True)
    ).all()
    originals = _messages(session, [t.message_id for t in due if t.message_id is not None])
    report: list[Escalation] = []
    for task in due:
        late = now - task.due_at
        note = f"escalated to {supervisor}: not called within the SLA (overdue by {_human(late)})"
        assert task.id is not None  # loaded
        item = Escalation(task.id, task.customer_id, task.topic, late, action.value)
        original = originals.get(task.message_id) if task.message_id is not None else None
        if action is EscalationAction.fallback:
            if original is None:
                note += f"; no {fallback_channel} fallback: the task has no ledger message"
            else:
                item.fallback_message_id = plan_escalation_fallback(
                    session, task.id, task.customer_id, original, fallback_channel, now)
                note += f"; fallback message planned on {fallback_channel}"
        task.status = TaskStatus.escalated.value
        task.outcome = note if not task.outcome else f"{task.outcome}\n{note}"
        task.updated_at = now
        item.note = note
        report.append(item)
    session.flush()
    return report


def _messages(session: Session, ids: list[int]) -> dict[int, Message]:
    if not ids:
        return {}
    rows = session.scalars(select(Message).where(col(Message.id).in_(ids)))
    return {m.id: m for m in rows if m.id is not None}  # loaded rows: never None


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"
