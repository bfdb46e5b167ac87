"""The outage notice's audience and words: who is affected, and what each update says.

- One run per (incident, status). Its ledger rows share the dedupe key
  ``incident:<id>:<status>``, so triggering the same update again notifies nobody twice.
- The policy's high-touch rules turn the first update of a major or critical incident into
  phone tasks for premium accounts (``data.severity``); later updates do not call again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, get_args

from orchestrator.settings import get_settings

Status = Literal["investigating", "identified", "monitoring", "resolved"]
Severity = Literal["minor", "major", "critical"]
STATUSES: tuple[str, ...] = get_args(Status)
SEVERITIES: tuple[str, ...] = get_args(Severity)
TOPIC = "outage"
# What we are doing, when the caller gives a title and no words of their own for it.
ACTIONS = {
    "investigating": "We are investigating and will keep you posted",
    "identified": "We have found the cause and are working on a fix",
    "monitoring": "A fix is in place and we are watching it closely",
}
NEXT_UPDATE_MINUTES = {"minor": 120, "major": 60, "critical": 30}


def dedupe_key(incident_id: str, status: str) -> str:
    return f"incident:{incident_id}:{status}"


def affected_filter(affected: dict[str, Any] | None) -> dict[str, Any] | None:
    """The affected attributes as a segment filter: ``{"region": "eu"}`` filters ``attributes.region``.

    Customer fields (``tier``, ``timezone``...) and full segment filter keys pass as they are.
    """
    from orchestrator.segments.filters import ATTRIBUTE_PREFIXES, FIELDS  # late: the CLI imports Status alone

    if not affected:
        return None
    keep = {*FIELDS, "and", "or", "not", "has"}
    return {k if k in keep or k.startswith(ATTRIBUTE_PREFIXES) else f"attributes.{k}": v
            for k, v in affected.items()}


def describe_affected(segment: str | None, affected: dict[str, Any] | None) -> str:
    """Words for the template's ``affected`` fact."""
    if affected:
        parts = [f"{k.split('.')[-1].replace('_', ' ')} {v}" for k, v in affected.items()
                 if isinstance(v, str | int | float)]
        if parts:
            return "customers with " + " and ".join(parts)
    if segment and segment != "all":
        from orchestrator.segments import get_segment

        return get_segment(segment).description or segment
    return "all customers"


def notice_facts(status: str, severity: str, summary: str, *, title: str | None, segment: str | None,
                 affected: dict[str, Any] | None, status_page_url: str | None, call: bool
                 ) -> tuple[str, dict[str, Any]]:
    """The template and its facts for this update. ``call``: let the high-touch rules phone people."""
    from orchestrator.models import utcnow

    url = status_page_url or f"{get_settings().public_base_url.rstrip('/')}/status"
    now = utcnow()
    if status == "resolved":
        return "outage_resolved", {
            "incident_title": title or summary, "resolved_at": f"{now:%H:%M} UTC",
            "cause_summary": summary, "status_page_url": url, "status": status,
        }
    next_update = now + timedelta(minutes=NEXT_UPDATE_MINUTES[severity])
    data = {
        "incident_title": title or summary,
        "affected": describe_affected(segment, affected),
        "actions": summary if title else ACTIONS[status],
        "next_update": f"{next_update:%H:%M} UTC",
        "status_page_url": url,
        "status": status,
    }
    if call:
        data["severity"] = severity  # what the policy's high-touch rules match
    return "outage_notice", data


def resolved_call_note(facts: dict[str, Any]) -> str:
    """What an agent reads on a call about an incident that is now resolved (``facts``: those of
    the resolved update)."""
    return (f"UPDATE: resolved at {facts['resolved_at']}: {facts['incident_title']}. Cause: "
            f"{facts['cause_summary']}. Do not call about it as ongoing: if you call, say it is fixed "
            f"and apologise for the disruption ({facts['status_page_url']}).")
