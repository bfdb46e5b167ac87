"""Rows whose send is in doubt: flagged when a claim's lease runs out, settled by the provider or
an operator."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from orchestrator.db import is_sqlite, session_scope
from orchestrator.ledger.changes import row_values, update_in_flight
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus, utcnow
from orchestrator.reasons import RECONCILE

LEASE_EXPIRED = RECONCILE.code("lease_expired")

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=10)


def reconcile_stuck(*, older_than: timedelta = DEFAULT_LEASE, now: datetime | None = None,
                    url: str | None = None) -> list[int]:
    """Flags messages left in ``sending`` longer than ``older_than`` (a crash between claim and record).

    They move to ``reconcile`` and are never re-sent blind: the provider may have accepted them.
    An operator (or a provider lookup) settles them. Returns their ids.
    """
    now = now or utcnow()
    cutoff = now - older_than
    stale = select(MESSAGE.c.id, MESSAGE.c.reason_codes, MESSAGE.c.updated_at).where(
        MESSAGE.c.status == MessageStatus.sending, MESSAGE.c.updated_at < cutoff
    )
    with session_scope(url) as session:
        if not is_sqlite(session.get_bind()):
            stale = stale.with_for_update(skip_locked=True)  # a live dispatcher may be recording them
        rows = session.execute(stale.order_by(MESSAGE.c.id)).all()
        if rows:
            update_in_flight(
                session,
                [
                    row_values(
                        row.id, MessageStatus.reconcile, now,
                        reason_codes=[*row.reason_codes, LEASE_EXPIRED],
                        last_error=f"{LEASE_EXPIRED}: in sending since "
                        f"{row.updated_at:%Y-%m-%d %H:%M:%S} UTC (lease {older_than}); "
                        "check the provider before sending again",
                    )
                    for row in rows
                ],
            )
    ids = [row.id for row in rows]
    if ids:
        log.warning("reconcile: %d message(s) stuck in sending need a check: %s", len(ids), ids[:50])
    return ids


class SentLookup(Protocol):
    """What an adapter implements when its provider can be asked about a message by our id."""

    def find_sent(self, message_ids: list[int]) -> dict[int, str | None]:
        """For each message the provider can tell about: its provider message id when it has the
        message, ``None`` when it certainly never received it. Unknown ids are left out."""
        ...


def resolve_reconcile(lookups: Mapping[str, SentLookup], *, now: datetime | None = None,
                      url: str | None = None, limit: int = 5000) -> dict[str, int]:
    """Settles ``reconcile`` messages on channels whose provider can be asked (``lookups`` by channel).

    Found at the provider -> ``sent``; certainly not received -> ``deferred`` to now (safe to send
    again); no answer -> left for an operator. Returns how many went each way.
    """
    now = now or utcnow()
    with session_scope(url) as session:
        rows = session.execute(
            select(MESSAGE.c.id, MESSAGE.c.channel, MESSAGE.c.send_at).where(
                MESSAGE.c.status == MessageStatus.reconcile, MESSAGE.c.channel.in_(list(lookups))
            ).order_by(MESSAGE.c.id).limit(limit)
        ).all()
    by_channel: dict[str, list[Any]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    counts = {"sent": 0, "requeued": 0, "unknown": 0}
    updates: list[dict[str, Any]] = []
    for channel, pending in by_channel.items():
        answers = lookups[channel].find_sent([row.id for row in pending])
        for row in pending:
            if row.id not in answers:
                counts["unknown"] += 1
                continue
            found = answers[row.id]
            counts["sent" if found else "requeued"] += 1
            verdict = "the provider has it" if found else "the provider never received it"
            updates.append(row_values(
                row.id, MessageStatus.sent if found else MessageStatus.deferred, now,
                send_at=row.send_at if found else now, provider_message_id=found,
                sent_at=now if found else None, last_error=f"reconciled: {verdict}",
            ))
    with session_scope(url) as session:
        update_in_flight(session, updates)
    return counts


class OperatorVerdict:
    """An operator's answer after checking the provider's console: a ``SentLookup`` for chosen ids."""

    def __init__(self, message_ids: list[int], *, sent: bool, provider_message_id: str | None = None):
        self._answer = {mid: (provider_message_id or "confirmed-by-operator") if sent else None
                        for mid in message_ids}

    def find_sent(self, message_ids: list[int]) -> dict[int, str | None]:
        return {mid: self._answer[mid] for mid in message_ids if mid in self._answer}


def settle_reconcile(message_ids: list[int], *, sent: bool, provider_message_id: str | None = None,
                     now: datetime | None = None, url: str | None = None) -> dict[str, int]:
    """An operator settles flagged messages: ``sent`` marks them sent, otherwise they are queued
    to go out again (the operator checked that the provider never received them)."""
    with session_scope(url) as session:
        channels = session.scalars(
            select(MESSAGE.c.channel).where(MESSAGE.c.id.in_(message_ids),
                                            MESSAGE.c.status == MessageStatus.reconcile).distinct()
        ).all()
    verdict = OperatorVerdict(message_ids, sent=sent, provider_message_id=provider_message_id)
    counts = resolve_reconcile(dict.fromkeys(channels, verdict), now=now, url=url)
    return {"sent": counts["sent"], "requeued": counts["requeued"],
            "not_flagged": len(set(message_ids)) - counts["sent"] - counts["requeued"]}
