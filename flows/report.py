"""The daily report: each recent campaign's and incident's results, and the sender's health,
published as Prefect artifacts next to the runs that sent them.

Thin: the numbers come from ``orchestrator.reports`` (grouped SQL, one query set per report);
this flow picks what is recent, names the runs and publishes a table (per channel) and a
markdown page (the whole report) for each.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.common import (
    artifact_key,
    install_prefect_redaction,
    markdown_summary,
    stamped,
    summary_table_artifact,
)
from orchestrator.db import session_scope
from orchestrator.models import utcnow
from orchestrator.reports import ReportSlice, build_report, recent_slices
from orchestrator.reports.present import channel_table, markdown


@task(name="find-recent", cache_policy=NO_CACHE)
def find_recent_task(days: float) -> list[ReportSlice]:
    with session_scope() as session:
        return recent_slices(session, utcnow() - timedelta(days=days))


@task(name="report", task_run_name="{key}", cache_policy=NO_CACHE)
def report_task(part: ReportSlice, key: str) -> dict[str, Any]:
    with session_scope() as session:
        return build_report(session, part)


def publish(key: str, report: dict[str, Any]) -> None:
    """The report's table (per channel) and markdown (everything) artifacts."""
    summary_table_artifact(f"{key}-channels", channel_table(report),
                           description=f"Results per channel: {report['slice']['title']}")
    markdown_summary(key, markdown(report), description=f"Report: {report['slice']['title']}")


@flow(name="report", flow_run_name=stamped("report"),
      description="Publishes the results of recent campaigns and incidents and the sender-health flags.")
def report(days: float = 1.0, overview_days: float = 30.0) -> dict[str, dict[str, int]]:
    """Reports every campaign and incident that decided a message in the last ``days`` days, and
    an overview of the last ``overview_days``; returns each artifact key's funnel."""
    if days <= 0 or overview_days <= 0:
        raise ValueError("days and overview_days must be positive")
    install_prefect_redaction()
    logger = get_run_logger()
    parts = find_recent_task(days)
    parts.append(ReportSlice(since=utcnow() - timedelta(days=overview_days)))
    published: dict[str, dict[str, int]] = {}
    for part in parts:
        key = artifact_key("report", part.name)
        result = report_task(part, key)
        publish(key, result)
        published[key] = {k: v for k, v in result["funnel"].items() if isinstance(v, int)}
        raised = [f"{f['channel']} {f['rule']}" for f in result["flags"] if f["raised"]]
        if raised and part.since is not None:
            logger.warning("sender health flags raised: %s", ", ".join(raised))
    logger.info("published %d report(s)", len(published))
    return published
