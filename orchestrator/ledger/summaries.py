"""Where the ledger rows of one campaign, incident update or lifecycle run stand, and why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from orchestrator.db import session_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import MessageStatus
from orchestrator.reasons import HOW_IT_GOES, RETRY, WHY_IT_WAITS, has_kind

NOT_YET_SENT = {MessageStatus.planned.value, MessageStatus.sending.value}
REACHED = {MessageStatus.sent.value, MessageStatus.delivered.value}


def standing_reason(status: str, codes: list[str], last_error: str | None, attempts: int) -> str:
    """Why a row is where it is, in reason codes ("" for messages on their way or delivered)."""
    if status in NOT_YET_SENT or status in REACHED:
        return ""
    if status == MessageStatus.deferred:
        reasons = [c for c in codes if has_kind(c, WHY_IT_WAITS)]
        if attempts > 0 and last_error:
            reasons.append(RETRY.code(last_error.split(":", 1)[0]))  # a provider said "later"
    else:
        reasons = sorted({c for c in codes if not has_kind(c, HOW_IT_GOES)})
    return " + ".join(reasons)


@dataclass
class LedgerSummary:
    """Where every message of one campaign, incident update or lifecycle run stands, and why."""

    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (channel, status, reason)
    customers: set[int] = field(default_factory=set)

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
        return {"customers": len(self.customers), "channels": self.by_channel(), "reasons": self.reasons()}


def ledger_summary(
    *,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    dedupe_prefix: str | None = None,
    created_since: datetime | None = None,
    url: str | None = None,
) -> LedgerSummary:
    """Counts the ledger rows matching every given filter, per channel, status and reason."""
    m = MESSAGE.c
    query = select(m.customer_id, m.channel, m.status, m.reason_codes, m.last_error, m.attempts)
    if campaign_id is not None:
        query = query.where(m.campaign_id == campaign_id)
    if incident_id is not None:
        query = query.where(m.incident_id == incident_id)
    if dedupe_prefix is not None:
        query = query.where(m.dedupe_key.startswith(dedupe_prefix, autoescape=True))
    if created_since is not None:
        query = query.where(m.created_at >= created_since)
    summary = LedgerSummary()
    with session_scope(url) as session:
        for row in session.connection().execute(query):
            reason = standing_reason(row.status, list(row.reason_codes or []), row.last_error, row.attempts)
            summary.rows[(row.channel, row.status, reason)] += 1
            summary.customers.add(row.customer_id)
    return summary
