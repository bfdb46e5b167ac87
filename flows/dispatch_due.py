"""The due-sweeper: every minute, flag stuck sends, then send what is due, chunk by chunk.

Deferred messages (quiet hours, cap slots, local send times, provider retries) become due
here, and so do fallbacks reserved outside a flow (a late failure in a provider's status
callback). What fails here falls back as in a campaign (``flows.pipeline.fall_back``).
Each chunk is one task that claims its own rows in the ledger, so chunks run side by
side (and several workers may run this flow) without ever sending a message twice.
"""

from __future__ import annotations

from datetime import timedelta
from math import ceil

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed

from flows.common import (
    CHUNK_SIZE,
    Progress,
    dispatch_markdown,
    dispatch_task,
    install_prefect_redaction,
    markdown_summary,
    stamped,
    summary_table_artifact,
    thread_task_runner,
)
from flows.garbage_collection import collecting_less_often
from flows.pipeline import fall_back
from orchestrator.dispatch.report import DispatchReport
from orchestrator.ledger.queue import count_due
from orchestrator.ledger.reconcile import reconcile_stuck

FALLBACK_ROUNDS = 3  # as a campaign's: each round tries the next channel of the route


class DispatchConfigurationError(RuntimeError):
    """A channel's adapter is not set up; its messages stay deferred until it is fixed."""


@task(name="reconcile-stuck", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def reconcile_task(stuck_after_minutes: float) -> list[int]:
    return reconcile_stuck(older_than=timedelta(minutes=stuck_after_minutes))


@flow(
    name="dispatch-due",
    flow_run_name=stamped("dispatch-due"),
    task_runner=thread_task_runner(max_workers=4),
    description="Flags messages stuck in sending, then sends every due message in chunks.",
)
def dispatch_due_flow(
    max_messages: int = 50_000,
    chunk_size: int = CHUNK_SIZE,
    stuck_after_minutes: float = 10.0,
    channels: list[str] | None = None,
) -> dict[str, int]:
    """Returns the totals per outcome (sent, deferred, failed, suppressed, reconcile)."""
    if chunk_size < 1 or max_messages < 0 or stuck_after_minutes <= 0:
        raise ValueError("chunk_size must be >= 1, max_messages >= 0 and stuck_after_minutes > 0")
    install_prefect_redaction()
    logger = get_run_logger()
    stuck = reconcile_task(stuck_after_minutes)
    if stuck:
        logger.warning("%d message(s) were stuck in sending and need reconciling", len(stuck))

    total = min(count_due(channels=channels), max_messages)
    progress = Progress("dispatch-due-progress", total, description=f"{total} due message(s)")
    chunks = ceil(total / chunk_size)
    report = DispatchReport()
    with collecting_less_often():
        futures = [
            dispatch_task.submit(f"chunk-{n + 1}-of-{chunks}", limit=min(chunk_size, total - n * chunk_size),
                                 channels=channels)
            for n in range(chunks)
        ]
        for future in as_completed(futures):
            report.merge(future.result())
            progress.update(report.processed)
    progress.finish()
    fallbacks, fallback_report = fall_back(list(report.failures), FALLBACK_ROUNDS, label="sweep")
    report.merge(fallback_report)
    if fallbacks:
        logger.info("fallbacks reserved: %s", dict(fallbacks))

    summary_table_artifact("dispatch-due-outcomes", report.rows(), description="Outcomes per channel")
    markdown_summary("dispatch-due-summary", dispatch_markdown(report, title="Dispatch of due messages",
                                                               reconciled=stuck))
    if report.configuration_errors:
        raise DispatchConfigurationError(
            "messages stay deferred until these channels are configured: "
            + "; ".join(f"{ch}: {err}" for ch, err in sorted(report.configuration_errors.items()))
        )
    totals = {outcome: report.total(outcome) for outcome in ("sent", "deferred", "failed", "suppressed")}
    return {**totals, "reconcile": len(report.reconcile) + len(stuck)}


if __name__ == "__main__":
    dispatch_due_flow()
