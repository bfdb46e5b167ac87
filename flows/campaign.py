"""The campaign flow: one message to a segment, through the policy, a chunk of customers per task.

Each customer gets at most one message per campaign name (dedupe key ``campaign:<name>``), so a
re-run after a crash or a change of heart sends only what has not gone out yet. Messages the
policy defers (quiet hours, a local send time such as "10:00", a full cap) wait in the ledger for
the due-sweeper (``flows/dispatch_due.py``). The campaign's record: ``orchestrator.ledger.campaigns``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from math import ceil
from typing import Any

from prefect import flow, get_run_logger

from flows.common import (
    Progress,
    chunk_task_runner,
    install_prefect_redaction,
    summary_table_artifact,
    tag_flow_run,
)
from flows.pipeline import ChunkRange, audience_size, chunk_ranges, publish, run_pipeline
from orchestrator.campaign_params import CampaignError, check_campaign
from orchestrator.experiments import Percent, VariantSpec, build_experiment, save_experiment
from orchestrator.ledger.campaigns import is_cancelled, set_campaign_status, upsert_campaign
from orchestrator.ledger.summaries import ledger_summary
from orchestrator.policy.intents import IntentRecipe
from orchestrator.policy.plan import plan_audience
from orchestrator.segments import SegmentAudience


def dedupe_key(name: str) -> str:
    return f"campaign:{name}"


@flow(
    name="campaign",
    flow_run_name="campaign-{name}",
    task_runner=chunk_task_runner(max_workers=4),
    description="Sends one message to a segment through the contact policy, a chunk of customers per task.",
)
def campaign(
    name: str,
    segment: str,
    template: str,
    topic: str | None = None,
    tone: str | None = None,
    send_time: str = "now",
    data: dict[str, Any] | None = None,
    dry_run: bool = False,
    chunk_size: int = 1000,
    variants: list[VariantSpec] | None = None,
    holdout: Percent = 0.0,
    goal_event: str | None = None,
    attribution_days: int = 7,
) -> dict[str, Any]:
    """Runs (or with ``dry_run`` only plans) the campaign; returns its summary.

    ``send_time``: "now", a local time of day "HH:MM" (each customer's own zone) or an ISO
    date-time. ``data``: the template's facts. ``tone`` overrides the topic's tone.
    ``variants`` (tone, template, weight each) and ``holdout`` (percent of the audience that
    hears nothing) make the campaign an experiment; ``goal_event`` is the conversion it is
    meant to cause, counted for ``attribution_days`` after the send.
    """
    install_prefect_redaction()
    logger = get_run_logger()
    if chunk_size < 1:
        raise CampaignError("chunk_size must be at least 1")
    data = dict(data or {})
    topic = check_campaign(template, topic, data, send_time, tone)
    experiment = build_experiment(variants, holdout)
    for variant in experiment.variants:
        check_campaign(variant.template or template, topic, data, send_time, variant.tone or tone)
    total = audience_size(segment)
    facts = {"campaign": name, "segment": segment, "topic": topic, "template": template,
             "tone": tone or "(topic default)", "send time": send_time, "audience": total}
    if experiment.active:
        facts["variants"] = ", ".join(v.name for v in experiment.variants) or "(one)"
        facts["holdout"] = f"{experiment.holdout_percent:g}%"
        facts["goal"] = f"{goal_event} within {attribution_days} days" if goal_event else "(none: clicks)"

    if dry_run:
        plan = plan_audience(segment, topic, template, send_time=send_time, chunk_size=chunk_size,
                             dedupe_key=dedupe_key(name), shape=lambda intent: experiment.apply(intent, name))
        rows = [{"outcome": o, "customers": n} for o, n in sorted(plan.outcomes.items())]
        rows += [{"outcome": f"channel {ch}", "customers": n} for ch, n in plan.channels.most_common()]
        rows += [{"outcome": f"reason {r}", "customers": n} for r, n in plan.reasons.most_common()]
        summary_table_artifact(f"campaign-{name}-plan", rows, description=f"Dry run of campaign {name}")
        logger.info("dry run of %s for %d customers: %s", name, plan.customers, dict(plan.outcomes))
        return {"flow": "campaign", "name": name, "dry_run": True, **plan.as_dict()}

    campaign_id = upsert_campaign(name, segment, topic, template, tone, send_time)
    if campaign_id is None:
        raise CampaignError(f"could not create campaign {name!r}")
    save_experiment(campaign_id, experiment, goal_event, attribution_days)
    logger.info("campaign %s (id %d): %d customers in %s, %d chunk(s)", name, campaign_id, total, segment,
                ceil(total / chunk_size))

    recipe = IntentRecipe(topic=topic, template=template, dedupe_key=dedupe_key(name), data=data, tone=tone,
                          send_time=send_time, campaign_id=campaign_id, experiment=experiment, campaign=name)
    tag_flow_run(topic, f"campaign:{name}")
    progress = Progress(f"campaign-{name}-progress", total, description=f"Campaign {name}: customers done")
    # bulk: an outage notice meanwhile goes first (flows.pipeline)
    chunks = _until_cancelled(chunk_ranges(SegmentAudience(segment), recipe, chunk_size), campaign_id)
    run = run_pipeline(chunks, traffic="bulk", progress=progress)
    set_campaign_status(campaign_id, "dispatched")
    ledger = ledger_summary(campaign_id=campaign_id)
    publish(f"campaign-{name}", f"Campaign {name}", facts, ledger, run)
    return {"flow": "campaign", "name": name, "campaign_id": campaign_id, "dry_run": False,
            "audience": total, **run.as_dict(), "ledger": ledger.as_dict()}


def _until_cancelled(chunks: Iterable[ChunkRange], campaign_id: int) -> Iterator[ChunkRange]:
    """The chunks, until an operator cancels the campaign (``orchestrator campaign cancel``): the run
    then stops at its next chunk (chunks already reserving reserve nothing more)."""
    for chunk in chunks:
        if is_cancelled(campaign_id):
            get_run_logger().warning("the campaign was cancelled: no more chunks are reserved")
            return
        yield chunk
