"""The outage notice flow: tell affected customers fast, once per update, and close the loop when resolved.

- The first chunk is small (``FIRST_CHUNK_SIZE`` customers) and is dispatched while the next ones
  are reserved, so the first message reaches a provider within a second or so of the flow's start
  whatever the audience's size.
- One public social post per update: the ``IncidentUpdate`` row is the claim. Only the run that
  records the update posts; a re-trigger finds the row and does not post again.
- ``resolved`` cancels this incident's earlier notices that have not gone out yet (reason
  ``superseded:resolved``) and tells everyone who did get one that it is over.

Who is affected and what each update says: ``orchestrator.outage_notice``; the incident records
and the notices' ledger rows: ``orchestrator.ledger.incidents``.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.common import Progress, install_prefect_redaction, tag_flow_run, thread_task_runner
from flows.pipeline import audience_size_soon, chunk_ranges, publish, run_pipeline
from orchestrator.ledger.incidents import (
    NotifiedAudience,
    OutageError,
    cancel_superseded,
    count_notified,
    record_update,
)
from orchestrator.ledger.summaries import ledger_summary
from orchestrator.outage_notice import (
    SEVERITIES,
    STATUSES,
    TOPIC,
    Severity,
    Status,
    affected_filter,
    dedupe_key,
    notice_facts,
    resolved_call_note,
)
from orchestrator.pacing import urgency
from orchestrator.phone_tasks import close_incident_calls
from orchestrator.policy.intents import IntentRecipe
from orchestrator.segments import SegmentAudience

# Customers in the first chunk: their messages leave while the rest of the audience is still being
# decided (a full chunk of 500 took 0.3-0.5 s to decide and render before its first request went out).
FIRST_CHUNK_SIZE = 50


class PostNotYetAccepted(RuntimeError):
    """The social network said "later" (rate limit, server error): the post task retries."""


@task(name="post-update", task_run_name="post-{label}", cache_policy=NO_CACHE, retries=3,
      retry_delay_seconds=[5, 30, 120], retry_condition_fn=lambda _t, _r, state: _post_retry(state))
def post_task(label: str, template: str, data: dict[str, Any], key: str) -> dict[str, Any]:
    """One public post on the social channel for this update (no-op where the adapter cannot post)."""
    from channels.base import BroadcastAdapter, Transient
    from channels.registry import adapter_for
    from orchestrator.settings import get_settings
    from orchestrator.templating import build_context, render

    adapter = adapter_for("social", get_settings())
    try:
        if not isinstance(adapter, BroadcastAdapter):
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


def run_tags(incident_id: str, severity: str) -> list[str]:
    """The flow run's tags (the UI filters by them); ``flows.trigger`` creates the run with them."""
    return [TOPIC, f"incident:{incident_id}", f"severity:{severity}"]


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
    task_runner=thread_task_runner(max_workers=4),
    description="Tells affected customers about an incident update, fast and once; resolved closes it.",
)
def outage_notice(
    # Constraints in the signature are the deployment's parameter schema: Prefect refuses a run
    # that breaks them when it is submitted, before any worker starts it.
    incident_id: Annotated[str, Field(min_length=1, max_length=128)],
    status: Status,
    severity: Severity = "major",
    summary: str = Field(min_length=1, max_length=5000),
    segment: str | None = None,
    affected: dict[str, Any] | None = None,
    status_page_url: str | None = None,
    title: str | None = None,
    chunk_size: int = 500,
    social_post: bool = True,
) -> dict[str, Any]:
    """Notifies the affected customers (``segment`` narrowed by ``affected`` attributes) of this update."""
    install_prefect_redaction()
    urgency.announce()  # campaigns running meanwhile wait (the pipeline keeps the mark, and clears it)
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
    # the segment and filter are checked now; counting them goes on beside the first messages
    counting = audience_size_soon(audience_segment, extra) if status != "resolved" else None
    update = record_update(
        incident_id, status, severity, summary, title=title, segment=segment, status_page_url=status_page_url,
        affected=affected)
    incident_pk, recorded = update.incident_pk, update.recorded
    key = dedupe_key(incident_id, status)
    template, data = notice_facts(status, severity, summary, title=update.title, segment=segment,
                                  affected=affected, status_page_url=update.status_page_url,
                                  call=update.first_status == status)
    cancelled = cancel_superseded(incident_pk, key) if status == "resolved" else 0
    calls = close_incident_calls(incident_pk, resolved_call_note(data)) if status == "resolved" else (0, 0)
    audience: NotifiedAudience | SegmentAudience
    total: int | Future[int]
    if counting is None:
        total = count_notified(incident_pk, key)
        audience = NotifiedAudience(incident_pk, key)
    else:
        total, audience = counting, SegmentAudience(audience_segment, extra)
    logger.info("incident %s %s (%s)%s", incident_id, status, severity,
                "" if recorded else ": this update was already recorded, only what is missing goes out")

    recipe = IntentRecipe(topic=TOPIC, template=template, dedupe_key=key, data=data, incident_id=incident_pk)

    label = f"{incident_id}-{status}"
    tag_flow_run(*run_tags(incident_id, severity))
    post = post_task.submit(label, template, data, key) if social_post and recorded else None
    progress = Progress(f"outage-{label}-progress", total, description=f"Incident {incident_id} {status}")
    run = run_pipeline(chunk_ranges(audience, recipe, chunk_size, first=FIRST_CHUNK_SIZE), traffic="urgent",
                       progress=progress, window=2)
    total = total if isinstance(total, int) else total.result()
    logger.info("incident %s %s: %d customer(s) affected", incident_id, status, total)
    posted = post.result() if post is not None else {
        "posted": False, "reason": "already posted for this update" if not recorded else "disabled"}
    ledger = ledger_summary(incident_id=incident_pk, dedupe_prefix=key)
    facts = {"incident": incident_id, "status": status, "severity": severity, "audience": total,
             "earlier notices cancelled": cancelled if status == "resolved" else None,
             "agents' calls closed / rewritten": f"{calls[0]} / {calls[1]}" if status == "resolved" else None,
             "social post": posted.get("post_id") or posted.get("reason")}
    publish(f"outage-{label}", f"Incident {incident_id}: {status}", facts, ledger, run)
    return {"flow": "outage-notice", "incident_id": incident_id, "status": status, "severity": severity,
            "new_update": recorded, "first_update": update.first_status, "audience": total,
            "cancelled": cancelled, "post": posted,
            "calls_closed": calls[0], "calls_rewritten": calls[1],
            **run.as_dict(), "ledger": ledger.as_dict()}
