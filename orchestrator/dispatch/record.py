"""Record: one transaction per batch for the ledger changes and what they mean for the customer.

Provider verdicts that concern the customer (opted out, invalid address) become consent and
suppression records in the same transaction as the ledger update.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from channels.base import PermanentReason
from orchestrator.consent import record_consent, suppress_address
from orchestrator.db import session_scope
from orchestrator.dispatch.compose import ReadyMessage
from orchestrator.dispatch.report import DispatchReport
from orchestrator.ledger.changes import Failure, LedgerChange, is_paced, record_changes
from orchestrator.ledger.queue import ClaimedMessage
from orchestrator.models import MessageStatus
from orchestrator.reasons import PERMANENT

log = logging.getLogger(__name__)

_UNSUBSCRIBED = PERMANENT.code(PermanentReason.unsubscribed.value)
CUSTOMER_VERDICTS = {_UNSUBSCRIBED, PERMANENT.code(PermanentReason.invalid_address.value)}


def record(claimed: Mapping[int, ClaimedMessage], changes: list[LedgerChange], sent: list[ReadyMessage],
           now: datetime, url: str | None = None) -> None:
    """Writes the changes; ``sent`` are the messages the provider answered for (their verdicts may
    concern the customer)."""
    by_id = {item.message.id: item for item in sent}
    with session_scope(url) as session:
        record_changes(session, claimed, changes, now)
        for change in changes:
            item = by_id.get(change.message_id)
            if item is not None and change.reason in CUSTOMER_VERDICTS:
                apply_customer_verdict(session, item, change)


def apply_customer_verdict(session: Session, item: ReadyMessage, change: LedgerChange) -> None:
    """The provider says the customer opted out, or the address can never work: remember it.

    Each write sits in a savepoint: a concurrent worker recording the same address must not undo
    this batch's ledger updates.
    """
    m, source = item.message, f"provider:{change.provider or 'unknown'}"
    try:
        with session.begin_nested():
            if change.reason == _UNSUBSCRIBED:
                record_consent(session, m.customer_id, m.channel, "*", "opted_out", source)
            else:  # in the provider's word if it has one, as its late reports of the refusal say it
                reason = change.suppress_reason or PermanentReason.invalid_address.value
                suppress_address(session, m.channel, item.address, reason, source)
    except IntegrityError:
        log.info("%s verdict for message %s was already recorded by another worker", change.reason, m.id)


def add_to_report(report: DispatchReport, claimed: Mapping[int, ClaimedMessage],
                  changes: list[LedgerChange]) -> None:
    for change in changes:
        m = claimed[change.message_id]
        if is_paced(change):
            report.paced[change.reason or ""] += 1
            report.waiting[m.id] = (m.channel, change.send_at or m.send_at)
            continue
        report.waiting.pop(m.id, None)
        report.add(m.channel, change.status.value)
        if change.status in (MessageStatus.failed, MessageStatus.suppressed):
            report.failures.append(Failure(
                m.id, m.customer_id, m.channel, m.topic, change.status.value, change.reason or "",
                change.detail,
            ))
        elif change.status is MessageStatus.reconcile:
            report.reconcile.append(m.id)
