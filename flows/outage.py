"""The outage notice: tell affected customers fast, once per update, and close the loop when resolved.

- One run per (incident, status). Its ledger rows share the dedupe key
  ``incident:<id>:<status>``, so triggering the same update again notifies nobody twice.
- The first chunk of customers is reserved and dispatched before the next is reserved, so the
  first message reaches a provider within seconds whatever the audience's size.
- One public social post per update: the ``IncidentUpdate`` row is the claim. Only the run that
  records the update posts; a re-trigger finds the row and does not post again.
- The policy's high-touch rules turn the first update of a major or critical incident into
  phone tasks for premium accounts (``data.severity``); later updates do not call again.
- ``resolved`` cancels this incident's earlier notices that have not gone out yet (reason
  ``superseded:resolved``) and tells everyone who did get one that it is over.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import bindparam, distinct, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from flows.common import Progress, install_prefect_redaction, tag_flow_run
from flows.pipeline import (
    ShortReads,
    audience_chunks,
    audience_size,
    id_range,
    ledger_summary,
    publish,
    run_pipeline,
)
from orchestrator.db import is_sqlite, session_scope
from orchestrator.models import Incident, IncidentUpdate, Message, MessageStatus, utcnow
from orchestrator.policy import Intent
from orchestrator.segments import ATTRIBUTE_PREFIXES, FIELDS, get_segment
from orchestrator.settings import get_settings

Status = Literal["investigating", "identified", "monitoring", "resolved"]
Severity = Literal["minor", "major", "critical"]
STATUSES = ("investigating", "identified", "monitoring", "resolved")
SEVERITIES = ("minor", "major", "critical")
TOPIC = "outage"
SUPERSEDED = "superseded:resolved"
# What we are doing, when the caller gives a title and no words of their own for it.
ACTIONS = {
    "investigating": "We are investigating and will keep you posted",
    "identified": "We have found the cause and are working on a fix",
    "monitoring": "A fix is in place and we are watching it closely",
}
NEXT_UPDATE_MINUTES = {"minor": 120, "major": 60, "critical": 30}
# Ledger statuses of customers who did hear (or may have heard) about an earlier update.
HEARD = (MessageStatus.sending, MessageStatus.sent, MessageStatus.delivered, MessageStatus.reconcile)

_message = Message.__table__  # type: ignore[attr-defined]


class OutageError(ValueError):
    """The notice's parameters cannot work; nothing was sent."""


class PostNotYetAccepted(RuntimeError):
    """The social network said "later" (rate limit, server error): the post task retries."""


def dedupe_key(incident_id: str, status: str) -> str:
    return f"incident:{incident_id}:{status}"


def affected_filter(affected: dict[str, Any] | None) -> dict[str, Any] | None:
    """The affected attributes as a segment filter: ``{"region": "eu"}`` filters ``attributes.region``.

    Customer fields (``tier``, ``timezone``...) and full segment filter keys pass as they are.
    """
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
        return get_segment(segment).description or segment
    return "all customers"


def record_update(incident_id: str, status: str, severity: str, summary: str, *, title: str | None,
                  segment: str | None, status_page_url: str | None) -> tuple[int, bool, str]:
    """Creates or updates the incident and its update for ``status``.

    Returns (incident row id, whether this call recorded the update, the incident's first status).
    The incident row is locked (PostgreSQL) or the write lock held (SQLite) while the update is
    looked up, so of two simultaneous triggers of one update exactly one records it.
    """
    for _ in range(2):  # two first triggers may both insert the incident: the loser reads it
        try:
            with session_scope() as session:
                query = select(Incident).where(Incident.incident_key == incident_id)
                if not is_sqlite(session.get_bind()):
                    query = query.with_for_update()
                incident = session.scalars(query).first()
                if incident is None:
                    incident = Incident(incident_key=incident_id)
                incident.severity = severity
                incident.title = (title or incident.title or summary)[:200]
                incident.summary = summary or incident.summary
                incident.status_page_url = status_page_url or incident.status_page_url
                incident.segment = segment or incident.segment
                incident.updated_at = utcnow()
                session.add(incident)
                session.flush()
                updates = list(session.scalars(
                    select(IncidentUpdate).where(IncidentUpdate.incident_id == incident.id)
                    .order_by(IncidentUpdate.id)
                ))
                recorded = not any(u.status == status for u in updates)
                if recorded:  # a re-trigger of an older update does not move the incident back
                    incident.status = status
                    session.add(IncidentUpdate(incident_id=incident.id, status=status, summary=summary))
                first = updates[0].status if updates else status
                return incident.id, recorded, first  # type: ignore[return-value]
        except IntegrityError:
            continue
    raise OutageError(f"could not record incident {incident_id!r}")


def cancel_superseded(incident_pk: int, keep_key: str) -> int:
    """Earlier notices of the incident that have not gone out become ``cancelled``. Returns how many.

    Only ``planned`` and ``deferred`` rows change (a dispatcher that claimed one first sends it).
    """
    m = _message.c
    waiting = [MessageStatus.planned.value, MessageStatus.deferred.value]
    with session_scope() as session:
        query = select(m.id, m.reason_codes).where(
            m.incident_id == incident_pk, m.status.in_(waiting), m.dedupe_key != keep_key,
            ~m.dedupe_key.startswith(keep_key, autoescape=True),
        )
        if not is_sqlite(session.get_bind()):
            query = query.with_for_update(skip_locked=True)
        rows = session.connection().execute(query).all()
        if rows:
            now = utcnow()
            session.connection().execute(
                update(_message)
                .where(m.id == bindparam("b_id"), or_(*(m.status == s for s in waiting)))
                .values(status=MessageStatus.cancelled.value, reason_codes=bindparam("b_codes"),
                        updated_at=now),
                [{"b_id": r.id, "b_codes": [*(r.reason_codes or []), SUPERSEDED]} for r in rows],
            )
    return len(rows)


def _heard(incident_pk: int, resolved_key: str) -> list[Any]:
    m = _message.c
    return [m.incident_id == incident_pk, m.status.in_([s.value for s in HEARD]),
            ~m.dedupe_key.startswith(resolved_key, autoescape=True)]


def count_notified(incident_pk: int, resolved_key: str) -> int:
    m = _message.c
    query = select(func.count(distinct(m.customer_id))).where(*_heard(incident_pk, resolved_key))
    return int(ShortReads().execute(query).scalar_one())


def notified_customer_chunks(incident_pk: int, resolved_key: str, chunk_size: int) -> Iterator[list[int]]:
    """Customers who heard about an earlier update of the incident, ascending, a chunk at a time."""
    m = _message.c
    reads = ShortReads()
    last = 0
    while True:
        ids = list(reads.execute(
            select(m.customer_id).distinct()
            .where(*_heard(incident_pk, resolved_key), m.customer_id > last)
            .order_by(m.customer_id).limit(chunk_size)
        ).scalars())
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


def notice_facts(status: str, severity: str, summary: str, *, title: str | None, segment: str | None,
                 affected: dict[str, Any] | None, status_page_url: str | None, call: bool
                 ) -> tuple[str, dict[str, Any]]:
    """The template and its facts for this update. ``call``: let the high-touch rules phone people."""
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


@task(name="post-update", task_run_name="post-{label}", cache_policy=NO_CACHE, retries=3,
      retry_delay_seconds=[5, 30, 120], retry_condition_fn=lambda _t, _r, state: _post_retry(state))
def post_task(label: str, template: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    """One public post on the social channel for this update (no-op where the adapter cannot post)."""
    from channels.base import Transient
    from channels.registry import adapter_for
    from orchestrator.templating import build_context, render

    adapter = adapter_for("social")
    try:
        if not hasattr(adapter, "broadcast"):
            return {"posted": False, "reason": f"the {adapter.provider} adapter cannot post publicly"}
        text = render(template, tone=None, channel="social", kind="post",
                      context=build_context(None, data, topic=TOPIC)).text
        result = adapter.broadcast(text, key)
    finally:
        adapter.close()
    if isinstance(result.error, Transient):
        raise PostNotYetAccepted(f"{result.provider}: {result.error.reason}")
    if result.error is not None:
        get_run_logger().error("the %s post was refused: %s", result.provider, result.error)
        return {"posted": False, "provider": result.provider, "reason": str(result.error)}
    return {"posted": True, "provider": result.provider, "post_id": result.provider_post_id}


def _post_retry(state: Any) -> bool:
    try:
        state.result()
    except PostNotYetAccepted:
        return True
    except Exception:
        return False
    return False


@flow(
    name="outage-notice",
    flow_run_name="outage-{incident_id}-{status}",
    task_runner=ThreadPoolTaskRunner(max_workers=4),
    description="Tells affected customers about an incident update, fast and once; resolved closes it.",
)
def outage_notice(
    incident_id: str,
    status: Status,
    severity: Severity = "major",
    summary: str = "",
    segment: str | None = None,
    affected: dict[str, Any] | None = None,
    status_page_url: str | None = None,
    title: str | None = None,
    chunk_size: int = 500,
    social_post: bool = True,
) -> dict[str, Any]:
    """Notifies the affected customers (``segment`` narrowed by ``affected`` attributes) of this update."""
    install_prefect_redaction()
    logger = get_run_logger()
    if status not in STATUSES or severity not in SEVERITIES:
        raise OutageError(f"status must be one of {', '.join(STATUSES)} and severity one of "
                          f"{', '.join(SEVERITIES)}")
    if not (summary or title):
        raise OutageError("give a summary (or a title) of the incident")
    if chunk_size < 1:
        raise OutageError("chunk_size must be at least 1")
    extra = affected_filter(affected)
    audience_segment = segment or "all"
    if status != "resolved":
        total = audience_size(audience_segment, extra)  # also checks the segment and filter
    incident_pk, recorded, first_status = record_update(
        incident_id, status, severity, summary, title=title, segment=segment, status_page_url=status_page_url)
    key = dedupe_key(incident_id, status)
    template, data = notice_facts(status, severity, summary, title=title, segment=segment, affected=affected,
                                  status_page_url=status_page_url, call=first_status == status)
    cancelled = cancel_superseded(incident_pk, key) if status == "resolved" else 0
    if status == "resolved":
        total = count_notified(incident_pk, key)
        id_chunks = notified_customer_chunks(incident_pk, key, chunk_size)
    else:
        id_chunks = audience_chunks(audience_segment, chunk_size, extra)
    logger.info("incident %s %s (%s): %d customer(s)%s", incident_id, status, severity, total,
                "" if recorded else "; this update was already recorded, only what is missing goes out")

    def chunks() -> Iterator[tuple[str, list[Intent]]]:
        for ids in id_chunks:
            yield id_range(ids), [
                Intent(customer_id=cid, topic=TOPIC, template=template, dedupe_key=key, data=data,
                       incident_id=incident_pk)
                for cid in ids
            ]

    label = f"{incident_id}-{status}"
    tag_flow_run(TOPIC, f"incident:{incident_id}", f"severity:{severity}")
    post = post_task.submit(label, template, data, key) if social_post and recorded else None
    progress = Progress(f"outage-{label}-progress", total, description=f"Incident {incident_id} {status}")
    run = run_pipeline(chunks(), progress=progress, window=2)
    posted = post.result() if post is not None else {
        "posted": False, "reason": "already posted for this update" if not recorded else "disabled"}
    ledger = ledger_summary(incident_id=incident_pk, dedupe_prefix=key)
    facts = {"incident": incident_id, "status": status, "severity": severity, "audience": total,
             "earlier notices cancelled": cancelled if status == "resolved" else None,
             "social post": posted.get("post_id") or posted.get("reason")}
    publish(f"outage-{label}", f"Incident {incident_id}: {status}", facts, ledger, run)
    return {"flow": "outage-notice", "incident_id": incident_id, "status": status, "severity": severity,
            "new_update": recorded, "audience": total, "cancelled": cancelled, "post": posted,
            **run.as_dict(), "ledger": ledger.as_dict()}
