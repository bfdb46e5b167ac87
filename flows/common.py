"""What every flow stands on: masked logs, artifacts with valid keys, run names, the dispatch task.

- ``install_prefect_redaction()`` puts the redacting filter on Prefect's loggers and handlers.
  Prefect's API log handler formats each record itself (``APILogHandler.prepare`` ->
  ``self.format(record)``), so a filter on that handler masks the text before it is queued for
  the API; the console handler on the root logger gets the same filter.
- Artifact helpers mask personal data in every cell and description, slugify keys to Prefect's
  rule (lowercase letters, digits, dashes) and do nothing outside a flow or task run (so
  ``flow.fn()`` unit tests need no server).
- ``dispatch_task`` wraps ``orchestrator.dispatch.dispatch_due`` in a Prefect task with retries.
  A retry can never send twice: every message is claimed (``sending``) in the ledger before its
  provider call, so a retried task only finds what is still due.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, get_run_context
from prefect.exceptions import MissingContextError
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import InterfaceError, OperationalError

from orchestrator.db import DatabaseUnavailable
from orchestrator.dispatch.report import OUTCOMES, DispatchReport
from orchestrator.dispatch.run import dispatch_due
from orchestrator.logging_setup import install_redaction
from orchestrator.models import utcnow
from orchestrator.pacing.urgency import yield_to_urgent_work
from orchestrator.policy.explain import reconcile_hint
from orchestrator.privacy import redact_text
from orchestrator.settings import get_settings

# Loggers Prefect configures with handlers of their own (see prefect/logging/logging.yml).
PREFECT_LOGGERS = ("prefect", "prefect.flow_runs", "prefect.task_runs", "prefect.extra", "prefect.workers")


def install_prefect_redaction() -> None:
    """Masks emails and phone numbers in everything Prefect logs or ships to its API. Idempotent.

    Called at import and again at the start of each flow, because Prefect may rebuild its
    handlers when it sets up logging in a new process (workers, deployments).
    """
    install_redaction(logging.getLogger())
    names = set(PREFECT_LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith("prefect")}
    for name in sorted(names):
        install_redaction(logging.getLogger(name))


install_prefect_redaction()


def tag_flow_run(*tags: str) -> None:
    """Adds ``tags`` to the running flow run (the UI filters runs by them).

    The tags go on the flow run, not on its task runs: Prefect asks its server for tag
    concurrency slots before every tagged task run, and the first ask in a process held the
    first chunk of a campaign back by about two seconds (a cost per run, paid again by every
    deployment run). Outside a flow run, or when the run already has them, this does nothing.
    """
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    merged = sorted({*context.flow_run.tags, *tags})
    if merged == sorted(context.flow_run.tags):  # created with them (flows.trigger): no API call
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(context.flow_run.id, tags=merged)
    context.flow_run.tags = merged


# --- names ---------------------------------------------------------------------------------


def slugify(*parts: object, max_length: int = 100) -> str:
    """``slugify("Dispatch Due", 42)`` -> ``"dispatch-due-42"``: lowercase letters, digits and dashes."""
    text = "-".join(str(p) for p in parts if p is not None and str(p) != "")
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "run"


def artifact_key(*parts: object) -> str:
    """A valid Prefect artifact key built from any parts (names, ids, channels)."""
    return slugify(*parts)


def run_name(*parts: object, at: datetime | None = None) -> str:
    """A readable, sortable run name: ``run_name("campaign", "Spring Sale")`` ->
    ``campaign-spring-sale-20260124-093000``."""
    return slugify(*parts, f"{(at or utcnow()):%Y%m%d-%H%M%S}")


def stamped(prefix: str) -> Callable[[], str]:
    """For ``@flow(flow_run_name=stamped("dispatch-due"))``: the prefix plus the UTC start time."""
    return lambda: run_name(prefix)


# --- artifacts -----------------------------------------------------------------------------


def in_prefect_run() -> bool:
    try:
        get_run_context()
    except MissingContextError:
        return False
    return True


def _masked(value: Any) -> Any:
    return redact_text(value) if isinstance(value, str) else value


def _artifact_id(created: UUID | Coroutine[Any, Any, UUID]) -> UUID:
    """The id Prefect's artifact functions return: they hand back a coroutine instead when called
    from async code, and every flow and task here is synchronous."""
    if isinstance(created, UUID):
        return created
    created.close()  # never awaited: closed so it leaves no warning behind
    raise TypeError("artifacts are created from synchronous flows and tasks only")


def summary_table_artifact(key: str, rows: Sequence[Mapping[str, Any]], description: str | None = None
                           ) -> UUID | None:
    """A table artifact (one dict per row), personal data masked; None outside a run."""
    if not in_prefect_run():
        return None
    table = [{str(k): _masked(v) for k, v in row.items()} for row in rows]
    return _artifact_id(create_table_artifact(table=table, key=artifact_key(key),
                                              description=_masked(description)))


def markdown_summary(key: str, markdown: str, description: str | None = None) -> UUID | None:
    """A markdown artifact, personal data masked; None outside a run."""
    if not in_prefect_run():
        return None
    return _artifact_id(create_markdown_artifact(markdown=redact_text(markdown), key=artifact_key(key),
                                                 description=_masked(description)))


UPDATE_INTERVAL = 1.0  # seconds between progress artifact updates


class Progress:
    """A progress artifact that follows ``done`` out of ``total`` (a no-op outside a run). ``total``
    may still be being counted (a future) when the work starts; until it is known, progress is 0."""

    def __init__(self, key: str, total: int | Future[int], description: str | None = None) -> None:
        self._total, self.done, self.finished = total, 0, False
        self.artifact_id: UUID | None = None
        self._updated_at = float("-inf")
        if in_prefect_run():
            self.artifact_id = _artifact_id(create_progress_artifact(
                progress=self.percent, key=artifact_key(key), description=_masked(description)))

    @property
    def total(self) -> int | None:
        if isinstance(self._total, Future):
            if not self._total.done() or self._total.exception() is not None:
                return None
            self._total = self._total.result()
        return max(0, self._total)

    @property
    def percent(self) -> float:
        total = self.total
        if self.finished or total == 0:
            return 100.0
        return 0.0 if total is None else round(min(100.0, 100.0 * self.done / total), 1)

    def update(self, done: int, *, now: bool = False) -> None:
        """Records ``done``; the artifact follows at most once per ``UPDATE_INTERVAL`` (each update is
        a call to the Prefect API, and a large run finishes a chunk every few milliseconds)."""
        self.done = done
        if self.artifact_id is None:
            return
        at = time.monotonic()
        if now or at - self._updated_at >= UPDATE_INTERVAL:
            self._updated_at = at
            update_progress_artifact(artifact_id=self.artifact_id, progress=self.percent)

    def advance(self, n: int) -> None:
        self.update(self.done + n)

    def finish(self) -> None:
        self.finished = True
        self.update(max(self.done, self.total or 0), now=True)


def dispatch_markdown(report: DispatchReport, *, title: str, reconciled: Sequence[int] = ()) -> str:
    """The human summary of a dispatch: outcomes per channel, why messages were not sent, what
    needs a look. Ids only, never addresses."""
    lines = [f"# {title}", "", "| channel | " + " | ".join(OUTCOMES) + " |",
             "|---|" + "---|" * len(OUTCOMES)]
    for row in report.rows():
        lines.append(f"| {row['channel']} | " + " | ".join(str(row[o]) for o in OUTCOMES) + " |")
    if not report.counts:
        lines.append("| (nothing due) |" + " 0 |" * len(OUTCOMES))
    reasons = report.reasons()
    if reasons:
        lines += ["", "## Not sent, by reason", ""]
        lines += [f"- `{reason}`: {n}" for reason, n in reasons.most_common()]
    flagged = [*reconciled, *report.reconcile]
    if flagged:
        shown = ", ".join(str(i) for i in flagged[:100]) + (" ..." if len(flagged) > 100 else "")
        lines += ["", f"## Needs reconciling ({len(flagged)})", "",
                  "Outcome unknown (a crash or an adapter error while sending): "
                  + reconcile_hint(flagged) + ". Message ids: " + shown]
    if report.configuration_errors:
        lines += ["", "## Configuration errors", ""]
        lines += [f"- {channel}: {error}" for channel, error in sorted(report.configuration_errors.items())]
    return "\n".join(lines) + "\n"


# --- the dispatch task ---------------------------------------------------------------------

CHUNK_SIZE = 1000  # messages per claim: big enough for bulk SQL, small enough to keep leases short


def retry_on_infrastructure_errors(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry when the database or network hiccuped; a bug or bad input fails at once."""
    try:
        state.result()
    except (OperationalError, InterfaceError, DatabaseUnavailable, ConnectionError, TimeoutError):
        return True
    except Exception:
        return False
    return False


@task(
    name="dispatch-messages",
    task_run_name="dispatch-{label}",
    cache_policy=NO_CACHE,  # it sends messages: never replay a cached result
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_infrastructure_errors,
)
def dispatch_task(
    label: str = "due",
    *,
    limit: int | None = None,
    channels: list[str] | None = None,
    campaign_id: int | None = None,
    incident_id: int | None = None,
    message_ids: list[int] | None = None,
    message_runs: Sequence[tuple[int, int]] | None = None,
    pace_patience: float | None = None,
    pace_wait: float | None = None,
    waiting: Mapping[int, tuple[str, datetime]] | None = None,
    bulk: bool = False,
) -> DispatchReport:
    """Sends one chunk of due messages and returns what became of them.

    ``message_runs`` gives ``message_ids`` as runs of consecutive ids (``(first, last)`` pairs): a
    flow dispatching the rows it just reserved passes them so.

    ``limit`` defaults to all of ``message_ids`` when given (a flow dispatching the rows it just
    reserved), else to ``CHUNK_SIZE``. ``pace_patience``, ``pace_wait`` and ``waiting``: how this
    dispatch treats messages that wait for their send rate (``dispatch_due``). ``bulk``: waits first
    while urgent work runs (``orchestrator.pacing.urgency``).
    """
    if bulk:
        yield_to_urgent_work()
    if message_runs is not None:
        message_ids = [i for first, last in message_runs for i in range(first, last + 1)]
    if limit is None:
        limit = len(message_ids) if message_ids is not None else CHUNK_SIZE
    pacing: dict[str, Any] = {"pace_wait": pace_wait, "waiting": waiting}
    if pace_patience is not None:
        pacing["pace_patience"] = pace_patience
    report = dispatch_due(limit=limit, channels=channels, campaign_id=campaign_id, incident_id=incident_id,
                          message_ids=message_ids, claim_size=max(1, min(max(limit, len(waiting or ())),
                                                                         CHUNK_SIZE)), **pacing)
    get_run_logger().info(
        "%s: %s", label,
        ", ".join(f"{report.total(o)} {o}" for o in OUTCOMES if report.total(o)) or "nothing due",
    )
    return report


def thread_task_runner(max_workers: int) -> TaskRunner[PrefectFuture[Any]]:
    """Prefect's thread-pool runner, typed as ``@flow(task_runner=...)`` takes it. The parameter is
    ``TaskRunner[PrefectFuture]`` and the generic is invariant, so the runner's own
    ``TaskRunner[PrefectConcurrentFuture]`` does not match; Prefect's default casts it the same way."""
    return cast(TaskRunner[PrefectFuture[Any]], ThreadPoolTaskRunner(max_workers=max_workers))


def chunk_task_runner(max_workers: int) -> Any:
    """The task runner of a flow that fans out chunks (``ORCH_TASK_RUNNER``): threads of this
    process, or a Dask cluster through prefect-dask (``ORCH_DASK_ADDRESS``, a scheduler that workers
    on other machines joined; without it, a local cluster of ``ORCH_DASK_WORKERS`` processes). Chunk
    tasks take id ranges, not lists of customers, so what travels to a worker is small."""
    settings = get_settings()
    if settings.task_runner != "dask":
        return thread_task_runner(max_workers)
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": settings.dask_workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})
