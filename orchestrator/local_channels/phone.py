"""Phone calls by human agents: each message becomes a task in the agents' queue (no provider)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from channels import builtin
from channels.base import ChannelSpec, Limits, OutboundMessage, PermanentReason, SendResult
from channels.results import accepted, permanent
from orchestrator.db import session_scope
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.settings import Settings

PROVIDER = "phone"


class PhoneTaskAdapter:
    name: ClassVar[str] = "phone"
    channel: ClassVar[str] = "phone"
    channel_spec: ClassVar[ChannelSpec] = builtin.PHONE
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        database_url: str | None = None,
        sla_overrides: dict[str, timedelta] | None = None,
    ):
        self.database_url = database_url
        self.sla_overrides = sla_overrides
        self.limits = Limits(max_batch=1000)

    @classmethod
    def configured(cls) -> bool:
        return True  # the queue lives in our own database

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        """One task per message (the body is the call script); sending a message again returns
        the task it already has."""
        requests = [
            TaskRequest(
                customer_id=m.customer_id,
                topic=m.topic,
                reason=str(m.meta.get("reason") or m.subject or f"{m.topic or 'customer'} call"),
                script=m.body,
                priority=m.priority,
                due_in_seconds=m.due_in_seconds,
                message_id=m.message_id,
            )
            for m in batch if m.customer_id is not None and m.body.strip()
        ]
        with session_scope(self.database_url) as session:
            tasks = open_tasks(session, requests, sla_overrides=self.sla_overrides) if requests else []
            task_by_message = {t.message_id: t for t in tasks}
            results: list[SendResult] = []
            for m in batch:
                task = task_by_message.get(m.message_id)
                if task is None:
                    detail = "no customer for the call" if m.customer_id is None else "empty call script"
                    results.append(permanent(m, PROVIDER, PermanentReason.rejected, detail))
                else:
                    raw = {"task_id": task.id, "due_at": task.due_at.isoformat()}
                    results.append(accepted(m, PROVIDER, f"task-{task.id}", raw))
            return results

    def close(self) -> None:
        pass
