"""Where the ledger rows of one campaign, incident update or lifecycle run stand, and why."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, distinct, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from orchestrator.db import read_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus
from orchestrator.reasons import RETRY, says_why

NOT_YET_SENT = {MessageStatus.planned.value, MessageStatus.sending.value}
REACHED = {MessageStatus.sent.value, MessageStatus.delivered.value}


# How an operator's listing groups a run's messages by status.
PROGRESS = {
    "sent": (MessageStatus.sent, MessageStatus.delivered, MessageStatus.bounced),  # the provider took them
    "waiting": (MessageStatus.planned, MessageStatus.deferred, MessageStatus.sending),
    "suppressed": (MessageStatus.suppressed,),
    "cancelled": (MessageStatus.cancelled,),
    "failed": (MessageStatus.failed,),
    "to_reconcile": (MessageStatus.reconcile,),
}


def progress(statuses: dict[str, int]) -> dict[str, int]:
    """Messages by status -> the listing's groups (``PROGRESS``)."""
    return {group: sum(statuses.get(s.value, 0) for s in members) for group, members in PROGRESS.items()}


def latest_with_statuses(session: Session, model: Any, newest_first: Any, owner: ColumnElement[Any],
                         limit: int) -> list[tuple[Any, dict[str, int]]]:
    """The ``limit`` newest rows of ``model`` (campaigns, incidents) by ``newest_first``, each with its
    messages by status (``owner``: the message column naming it)."""
    query = select(model).order_by(newest_first.desc(), model.id.desc()).limit(limit)
    rows = list(session.scalars(query))
    counts = statuses_per(session, owner, [row.id for row in rows])
    return [(row, counts[row.id]) for row in rows]


def statuses_per(session: Session, owner: ColumnElement[Any], ids: list[int]) -> dict[int, dict[str, int]]:
    """Messages by status for each id of ``owner`` (``message.campaign_id`` or ``incident_id``), in
    one grouped query."""
    if not ids:
        return {}
    counted = session.connection().execute(
        select(owner, MESSAGE.c.status, func.count()).where(owner.in_(ids)).group_by(owner, MESSAGE.c.status))
    out: dict[int, dict[str, int]] = {i: {} for i in ids}
    for owner_id, status, n in counted:
        out[int(owner_id)][str(status)] = int(n)
    return out


def standing_reason(status: str, codes: list[str], last_error: str | None, attempts: int) -> str:
    """Why a row is where it is, in reason codes ("" for messages on their way or delivered)."""
    if status in NOT_YET_SENT or status in REACHED:
        return ""
    if status == MessageStatus.deferred:
        reasons = [c for c in codes if says_why(c, status)]
        if attempts > 0 and last_error:
            reasons.append(RETRY.code(last_error.split(":", 1)[0]))  # a provider said "later"
    else:
        reasons = sorted({c for c in codes if says_why(c, status)})
    return " + ".join(reasons)


@dataclass
class LedgerSummary:
    """Where every message of one campaign, incident update or lifecycle run stands, and why."""

    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (channel, status, reason)
    customers: int = 0  # distinct customers among the rows

    def by_channel(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (channel, status, _), n in sorted(self.rows.items()):
            out.setdefault(channel, {}).setdefault(status, 0)
            out[channel][status] += n
        return out

    def reasons(self) -> dict[str, dict[str, int]]:
        """status -> reason -> count, for everything not sent."""
        out: dict[str, dict[str, int]] = {}
        for (_, status, reason), n in self.rows.most_common():
            if reason:
                out.setdefault(status, {}).setdefault(reason, 0)
                out[status][reason] += n
        return out

    def table(self) -> list[dict[str, Any]]:
        return [{"channel": ch, "status": st, "reason": reason or "-", "messages": n}
                for (ch, st, reason), n in sorted(self.rows.items())]

    def as_dict(self) -> dict[str, Any]:
        return {"customers": self.customers, "channels": self.by_channel(), "reasons": self.reasons()}


def ledger_summary(
    *,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    dedupe_prefix: str | None = None,
    created_since: datetime | None = None,
    url: str | None = None,
) -> LedgerSummary:
    """Counts the ledger rows matching every given filter, per channel, status and reason.

    The database counts: rows are grouped by what their standing reason is made of, so Python
    sees a few hundred groups instead of every row of a large campaign."""
    m = MESSAGE.c
    conditions = []
    if campaign_id is not None:
        conditions.append(m.campaign_id == campaign_id)
    if incident_id is not None:
        conditions.append(m.incident_id == incident_id)
    if dedupe_prefix is not None:
        conditions.append(m.dedupe_key.startswith(dedupe_prefix, autoescape=True))
    if created_since is not None:
        conditions.append(m.created_at >= created_since)
    codes = cast(m.reason_codes, String)  # PostgreSQL cannot group by a json value; its text it can
    grouped = (select(m.channel, m.status, codes, m.last_error, m.attempts, func.count())
               .where(*conditions).group_by(m.channel, m.status, codes, m.last_error, m.attempts))
    summary = LedgerSummary()
    # A reader: at a run's end a campaign's summary must not hold up an outage notice's writes
    # (on SQLite a writer's transaction would take the one write lock while it counts).
    with read_scope(url) as session:
        connection = session.connection()
        for channel, status, text, last_error, attempts, n in connection.execute(grouped):
            reason = standing_reason(status, json.loads(text) if text else [], last_error, attempts)
            summary.rows[(channel, status, reason)] += n
        summary.customers = connection.execute(
            select(func.count(distinct(m.customer_id))).where(*conditions)).scalar_one()
    return summary
