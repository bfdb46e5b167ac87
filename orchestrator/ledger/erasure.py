"""A customer's ledger rows when their personal data is erased (``orchestrator.audience.erasure``).

The rows stay: when and why we messaged the customer is what caps, reports and audits count, and it
names no one. What has not gone out is cancelled (``erased``), and every row's facts (``data``, which
may quote the customer: a name, a complaint, a link of their own) are emptied.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session

from orchestrator.ledger.cancel import cancel_waiting
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import utcnow
from orchestrator.reasons import ERASED


def erase_messages(session: Session, customer_id: int) -> tuple[int, int]:
    """In the caller's transaction. Returns (cancelled, rows whose facts were emptied)."""
    ours = MESSAGE.c.customer_id == customer_id
    cancelled = cancel_waiting(session, ours, reason=ERASED.code())
    emptied = session.connection().execute(
        update(MESSAGE).where(ours).values(data={}, updated_at=utcnow())).rowcount
    return cancelled, int(emptied)
