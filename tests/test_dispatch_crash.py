"""A worker that dies right after the provider accepted its batch: nothing is ever sent twice."""

from __future__ import annotations

import multiprocessing
import os
from datetime import timedelta

from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.reconcile import reconcile_stuck
from orchestrator.local_channels.outbox import OutboxAdapter
from orchestrator.models import MessageStatus, OutboxEntry, utcnow
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates


class _DiesAfterTheProviderAccepted(OutboxAdapter):
    def send(self, batch):
        super().send(batch)  # the provider (the outbox) has the messages...
        os._exit(3)  # ...and the worker dies before it can record that


def _crashing_worker() -> None:
    dispatch_due(adapters={"email": _DiesAfterTheProviderAccepted("email")})


def test_a_crash_between_provider_call_and_record_is_reconciled_not_resent(db_url, tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)
    ids = add_messages(add_customers(3))

    worker = multiprocessing.get_context("spawn").Process(target=_crashing_worker)
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 3
    assert {m.status for m in messages(ids).values()} == {MessageStatus.sending}

    later = utcnow() + timedelta(minutes=15)
    assert dispatch_due(now=later).processed == 0  # a sweep never picks up `sending` rows
    assert reconcile_stuck(older_than=timedelta(minutes=10), now=later) == ids
    assert dispatch_due(now=later + timedelta(hours=1)).processed == 0

    with session_scope() as s:
        delivered = [e.message_id for e in s.exec(select(OutboxEntry))]
    assert sorted(delivered) == ids  # each exactly once
    assert {m.status for m in messages(ids).values()} == {MessageStatus.reconcile}
