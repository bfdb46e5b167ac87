"""``orchestrator tasks``: the phone-call queue for human agents (list, claim, done, escalate)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from orchestrator.cli.output import DataTable, console, fail, neutralise, plain, print_json

tasks_app = typer.Typer(
    help="Phone tasks: calls for human agents, with SLAs and escalation.", no_args_is_help=True
)


def _customers(session: Any, ids: set[int]) -> dict[int, Any]:
    from sqlalchemy import select
    from sqlmodel import col

    from orchestrator.models import Customer

    if not ids:
        return {}
    return {c.id: c for c in session.scalars(select(Customer).where(col(Customer.id).in_(ids)))}


def _origins(session: Any, tasks: list[Any]) -> dict[int, str]:
    from orchestrator.policy.explain import message_origins

    return message_origins(session, [t.message_id for t in tasks if t.message_id is not None])


def _task_dict(task: Any, customer: Any, now: Any, *, full_contact: bool = False,
               origin: str | None = None) -> dict[str, Any]:
    from orchestrator.phone_tasks import is_overdue
    from orchestrator.privacy import mask_phone

    phone = customer.phone if customer is not None else None
    return {
        "id": task.id,
        "customer_id": task.customer_id,
        "customer": customer.name if customer is not None else "",
        "phone": phone if full_contact else mask_phone(phone),
        "topic": task.topic,
        "reason": task.reason,
        "priority": task.priority,
        "due_at": task.due_at.isoformat(),
        "overdue": is_overdue(task, now),
        "status": task.status,
        "assignee": task.assignee,
        "outcome": task.outcome,
        "message_id": task.message_id,
        "for": origin or "",  # the campaign, incident update or template of the task's message
        **({"script": task.script} if full_contact else {}),
    }


@tasks_app.command("list")
def list_command(
    overdue: bool = typer.Option(False, "--overdue", help="Only open or claimed tasks past their due time."),
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="Filter by status (repeatable). Default: open, claimed, escalated."),
    ] = None,
    assignee: str = typer.Option(None, "--assignee", help="Only tasks claimed by this agent."),
    limit: int = typer.Option(200, "--limit", min=1),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The queue, highest priority first, then the earliest due."""
    from orchestrator.db import session_scope
    from orchestrator.models import utcnow
    from orchestrator.phone_tasks import ACTIVE, TaskStatus, list_tasks

    valid = {s.value for s in TaskStatus}
    bad = [s for s in status or [] if s not in valid]
    if bad:
        fail(f"unknown status {', '.join(bad)}; use one of {', '.join(sorted(valid))}", 2)
    now = utcnow()

    with session_scope() as session:
        tasks = list_tasks(
            session,
            statuses=status or [s.value for s in ACTIVE],
            overdue=overdue,
            assignee=assignee,
            now=now,
            limit=limit,
        )
        customers = _customers(session, {t.customer_id for t in tasks})
        origins = _origins(session, tasks)
        rows = [_task_dict(t, customers.get(t.customer_id), now, origin=origins.get(t.message_id or 0))
                for t in tasks]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No overdue tasks." if overdue else "No tasks in the queue.")
        return
    table = DataTable(title="Overdue phone tasks" if overdue else "Phone tasks")
    for column in (
        "id",
        "priority",
        "due (UTC)",
        "status",
        "assignee",
        "customer",
        "phone",
        "topic",
        "for",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        due = Text.assemble(r["due_at"][:16].replace("T", " "), (" OVERDUE", "red") if r["overdue"] else "")
        table.add_row(
            str(r["id"]), str(r["priority"]), due, r["status"], r["assignee"] or "", r["customer"],
            r["phone"], r["topic"], r["for"], r["reason"],
        )  # fmt: skip
    console.print(table)


@tasks_app.command("claim")
def claim_command(
    task_id: int = typer.Argument(..., help="The task id."),
    agent: str = typer.Option(..., "--agent", help="Who takes the call."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Takes a task: shows the customer's number and the call script."""
    from orchestrator.db import session_scope
    from orchestrator.models import utcnow
    from orchestrator.phone_tasks import TaskError, claim_task

    now = utcnow()
    try:
        with session_scope() as session:
            task = claim_task(session, task_id, agent, now=now)
            customer = _customers(session, {task.customer_id}).get(task.customer_id)
            data = _task_dict(task, customer, now, full_contact=True,
                              origin=_origins(session, [task]).get(task.message_id or 0))
    except TaskError as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
        return
    console.print(Text.assemble((f"Task {task_id} claimed by {neutralise(agent)}.", "green"),
                                " Call ", plain(data["customer"]), " on ", plain(data["phone"])))
    about = f", for {data['for']}" if data["for"] else ""
    console.print(Text.assemble("Reason: ", plain(data["reason"]),
                                plain(f" (topic {data['topic']}{about}, due {data['due_at'][:16]} UTC)")))
    console.print(Text.assemble("\n", plain(data["script"])), highlight=False)


@tasks_app.command("done")
def done_command(
    task_id: int = typer.Argument(..., help="The task id."),
    outcome: str = typer.Option(..., "--outcome", help="What happened on the call."),
    no_answer: bool = typer.Option(False, "--no-answer", help="The customer did not answer."),
    agent: str = typer.Option(None, "--agent", help="Who made the call (default: the claiming agent)."),
) -> None:
    """Closes a task as done (or no_answer) with the outcome notes."""
    from orchestrator.db import session_scope
    from orchestrator.phone_tasks import TaskError, complete_task

    try:
        with session_scope() as session:
            task = complete_task(session, task_id, outcome, no_answer=no_answer, agent=agent)
            status = task.status
    except TaskError as exc:
        fail(str(exc))
    console.print(f"[green]Task {task_id} closed:[/] {status}")


@tasks_app.command("escalate-overdue")
def escalate_command(
    action: str = typer.Option(
        "supervisor",
        "--action",
        help="'supervisor' (a note for the supervisor) or 'fallback' (also plan a message).",
    ),
    fallback_channel: str = typer.Option(
        "email", "--fallback-channel", help="Channel of the fallback message."
    ),
    supervisor: str = typer.Option("supervisor", "--supervisor", help="Who the escalation goes to."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Marks open tasks past their due time as escalated and reports them."""
    from orchestrator.db import session_scope
    from orchestrator.phone_tasks import EscalationAction, escalate_overdue

    if action not in {a.value for a in EscalationAction}:
        fail(f"--action must be 'supervisor' or 'fallback', got {action!r}", 2)
    with session_scope() as session:
        report = escalate_overdue(
            session, action=action, fallback_channel=fallback_channel, supervisor=supervisor
        )
    rows = [
        {
            "task_id": e.task_id,
            "customer_id": e.customer_id,
            "topic": e.topic,
            "overdue_minutes": int(e.overdue_by.total_seconds() // 60),
            "action": e.action,
            "fallback_message_id": e.fallback_message_id,
            "note": e.note,
        }
        for e in report
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No overdue open tasks.")
        return
    table = DataTable(title=f"Escalated {len(rows)} overdue task(s)")
    for column in ("task", "customer", "topic", "overdue (min)", "fallback message", "note"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["task_id"]), str(r["customer_id"]), str(r["topic"] or ""), str(r["overdue_minutes"]),
            str(r["fallback_message_id"] or ""), str(r["note"] or ""),
        )  # fmt: skip
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(tasks_app, name="tasks")
