"""Messages that have not gone out yet become ``cancelled``, with the reason why: an incident that
was resolved first (``ledger.incidents``), a campaign an operator stopped (``ledger.campaigns``).

Only ``planned`` and ``deferred`` rows change: a dispatcher that claimed one first (``sending``)
sends it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, bindparam, or_, select, update
from sqlmodel import Session

from orchestrator.db import is_sqlite
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus, utcnow
from orchestrator.reasons import describe

NOT_GONE_OUT = (MessageStatus.planned.value, MessageStatus.deferred.value)


def cancel_waiting(session: Session, *where: ColumnElement[bool], reason: str) -> int:
    """Cancels the rows matching ``where`` that have not gone out, adding ``reason`` to their
    reason codes and its words to their explanation, in the caller's transaction. Returns how many."""
    m = MESSAGE.c
    query = select(m.id, m.reason_codes, m.reason_text).where(*where, m.status.in_(NOT_GONE_OUT))
    if not is_sqlite(session.get_bind()):
        query = query.with_for_update(skip_locked=True)
    rows = session.connection().execute(query).all()
    said = describe(reason)
    said = f"{said[:1].upper()}{said[1:]}."  # the decision's words, then this sentence
    if rows:
        session.connection().execute(
            update(MESSAGE)
            .where(m.id == bindparam("b_id"), or_(*(m.status == s for s in NOT_GONE_OUT)))
            .values(status=MessageStatus.cancelled.value, reason_codes=bindparam("b_codes"),
                    reason_text=bindparam("b_text"), updated_at=utcnow()),
            [{"b_id": r.id, "b_codes": [*(r.reason_codes or []), reason],
              "b_text": f"{r.reason_text} {said}".strip()} for r in rows],
        )
    return len(rows)
