"""What the campaign, outage and lifecycle flows share: reserve chunks, dispatch them, fall back, sum up.

``run_pipeline`` takes chunks (one Prefect task per chunk, never per message): a ``ChunkRange``
(an audience, a range of customer ids in it and the recipe of their intent: a few hundred bytes
whatever the chunk size, so a Dask worker on another machine receives it cheaply and Prefect has
no list to walk) or, for small ad-hoc runs, a label and a list of intents. As soon
as a chunk is reserved, its due messages are dispatched by a task of their own while later chunks
are still being reserved, so the first message reaches a provider after one chunk, not after the
whole audience. Messages deferred by the policy (quiet hours, local send times, cap slots) or by a
provider (``retry_after``) are left to the due-sweeper; messages waiting for their send rate
(``pace:<rate>``) are sent by one dispatch that follows them after the chunks (``CHUNK_PACE_WAIT``).
Failures go through the policy's fallback.

Urgent pipelines (outage notices) mark the database while they run and send their first chunk
before reserving the next (on SQLite a chunk's dispatch would otherwise wait for the writer behind
the next chunks' reservations); bulk pipelines (campaigns, the daily lifecycle run) wait before
each chunk while that mark holds (``orchestrator.pacing.urgency``).

Every guarantee lives in the ledger, so a retried task or a re-run flow is harmless: a chunk that
is reserved again finds its rows (``duplicate``), and dispatch only claims rows that are due.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.tasks import exponential_backoff

from flows.bulk_priority import yielding_cpu
from flows.common import (
    Progress,
    dispatch_markdown,
    dispatch_task,
    markdown_summary,
    retry_on_infrastructure_errors,
    summary_table_artifact,
)
from flows.garbage_collection import collecting_less_often
from orchestrator.db import ShortTransactionReader
from orchestrator.dispatch.report import OUTCOMES, DispatchReport
from orchestrator.ledger.changes import Failure
from orchestrator.ledger.summaries import LedgerSummary
from orchestrator.pacing import urgency
from orchestrator.policy import Intent, ReserveResult, reserve_chunk
from orchestrator.policy.fallback import reserve_fallbacks
from orchestrator.policy.intents import IntentRecipe
from orchestrator.segments import check_audience, count_audience, iter_audience_chunks
from orchestrator.settings import get_settings

# --- audiences -------------------------------------------------------------------------------


def audience_chunks(segment: str, chunk_size: int, extra: dict[str, Any] | None = None
                    ) -> Iterator[list[int]]:
    """Customer ids of the segment, ascending, a chunk at a time, without holding a transaction."""
    return iter_audience_chunks(ShortTransactionReader(), segment, chunk_size=chunk_size, extra=extra)


def audience_size(segment: str, extra: dict[str, Any] | None = None) -> int:
    return count_audience(ShortTransactionReader(), segment, extra=extra)


def audience_size_soon(segment: str, extra: dict[str, Any] | None = None) -> Future[int]:
    """The audience counted in a thread of its own while the work starts (a count over every customer
    took 0.2-1 s before an outage notice's first message). An unknown segment or a bad filter raises
    here, before anything is counted or written."""
    check_audience(segment, extra)
    counted: Future[int] = Future()

    def count() -> None:
        try:
            counted.set_result(audience_size(segment, extra))
        except BaseException as exc:  # given to whoever asks for the result
            counted.set_exception(exc)

    threading.Thread(target=count, name="count-audience", daemon=True).start()
    return counted


@dataclass(frozen=True)
class ChunkRange:
    """One chunk as its reserve task receives it: the customers of ``audience`` (anything with
    ``between(first, last)``: ``SegmentAudience``, ``NotifiedAudience``) with ids from ``first`` to
    ``last``, and the recipe of their intent."""

    label: str
    audience: Any
    first: int
    last: int
    recipe: IntentRecipe


def chunk_ranges(audience: Any, recipe: IntentRecipe, chunk_size: int, *, first: int | None = None
                 ) -> Iterator[ChunkRange]:
    """The audience in chunks of ``chunk_size`` customers, as id ranges.

    ``first``: the first chunk holds only that many customers (the rest of its range follows as the
    second), so the first messages are decided, rendered and handed to a provider after a few
    customers, not after a full chunk: urgent notices start that way.
    """
    for n, ids in enumerate(audience.chunks(chunk_size)):
        if n == 0 and first is not None and 0 < first < len(ids):
            yield ChunkRange(id_range(ids[:first]), audience, ids[0], ids[first - 1], recipe)
            ids = ids[first:]
        yield ChunkRange(id_range(ids), audience, ids[0], ids[-1], recipe)


def id_runs(ids: list[int]) -> tuple[tuple[int, int], ...]:
    """Ids as runs of consecutive ids: what a dispatch task receives instead of the list."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return tuple(runs)


def id_range(ids: list[int]) -> str:
    """``"101-to-200"``: the chunk's first and last customer id, for task run names.

    The word keeps a range of long ids (``9001-to-10000``) from looking like a phone number
    to the log masking."""
    return f"{ids[0]}-to-{ids[-1]}" if ids else "empty"


# --- tasks -----------------------------------------------------------------------------------

# Seconds a chunk's dispatch waits in-process for a send-rate slot. A chunk's dispatch does not stay
# for messages whose lane is slower than that (SMS at 10/s behind an outage's first second): they wait
# in the ledger (``pace:<rate>``) and one dispatch at the end of the pipeline sends them as their time
# comes. So a slow lane holds neither the other lanes of its chunk nor the chunks after it.
CHUNK_PACE_WAIT = 1.0


@dataclass
class ChunkReservation:
    """What reserving one chunk did: rows per status and the ids dispatch should look at."""

    label: str
    customers: int
    counts: dict[str, int]
    message_ids: list[int]  # every row that may go out (planned, deferred, and earlier rows found again)


def _reservation(label: str, customers: int, result: ReserveResult) -> ChunkReservation:
    ids = [r.message_id for r in result.rows if r.message_id is not None and r.status != "suppressed"]
    return ChunkReservation(label, customers, dict(result.counts), ids)


@task(
    name="reserve-chunk",
    task_run_name="reserve-{label}",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_infrastructure_errors,
)
def reserve_task(label: str, chunk: ChunkRange | list[Intent], bulk: bool = False) -> ChunkReservation:
    """Decides and reserves one chunk (idempotent: a retry finds the rows as duplicates). ``bulk``:
    waits first while urgent work runs."""
    if bulk:
        urgency.yield_to_urgent_work()
    if isinstance(chunk, ChunkRange):
        intents = chunk.recipe.intents(chunk.audience.between(chunk.first, chunk.last))
    else:
        intents = chunk
    return _reservation(label, len({i.customer_id for i in intents}), reserve_chunk(intents))


@task(
    name="fall-back",
    task_run_name="fallback-{label}",
    cache_policy=NO_CACHE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=retry_on_infrastructure_errors,
)
def fallback_task(label: str, failures: list[Failure]) -> ChunkReservation:
    """Reserves the next channel for failed messages where the policy says so."""
    result = reserve_fallbacks(failures)
    return _reservation(label, len({f.customer_id for f in failures}), result)


# --- the pipeline ----------------------------------------------------------------------------


@dataclass
class PipelineResult:
    reserved: Counter[str] = field(default_factory=Counter)  # planned/deferred/suppressed/duplicate
    report: DispatchReport = field(default_factory=DispatchReport)
    fallbacks: Counter[str] = field(default_factory=Counter)
    chunks: int = 0
    customers: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunks": self.chunks,
            "customers": self.customers,
            "reserved": dict(self.reserved),
            "dispatched": {o: self.report.total(o) for o in OUTCOMES},
            "reconcile_ids": list(self.report.reconcile),
            "fallbacks": dict(self.fallbacks),
        }


def _finished(future: PrefectFuture[Any]) -> bool:
    """Whether a submitted task is done, asked of its local future (``.state`` would query the API)."""
    wrapped = getattr(future, "wrapped_future", None)
    return bool(wrapped is not None and wrapped.done())


Traffic = Literal["normal", "bulk", "urgent"]


def run_pipeline(
    chunks: Iterable[ChunkRange | tuple[str, list[Intent]]],
    *,
    traffic: Traffic = "normal",
    progress: Progress | None = None,
    dispatch: bool = True,
    window: int = 4,
    fallback_rounds: int = 3,
    dispatch_size: int = 1000,
) -> PipelineResult:
    """Reserves each chunk (at most ``window`` in flight) and dispatches it as soon as it is reserved.

    Must run inside a flow. ``progress`` counts customers whose chunk is done. ``traffic``: ``urgent``
    holds bulk work back while it runs and sends its first chunk alone; ``bulk`` waits for urgent work
    and runs below the CPU priority of other work (``flows.bulk_priority``).
    """
    with _running_as(traffic), collecting_less_often():
        return _run_pipeline(chunks, traffic, progress, dispatch, window, fallback_rounds, dispatch_size)


def _running_as(traffic: Traffic) -> AbstractContextManager[None]:
    """Urgent work marks the database for its whole run; bulk work runs its threads below the CPU
    priority of everything else on the machine."""
    if traffic == "urgent":
        return urgency.holding()
    if traffic == "bulk":
        return yielding_cpu(get_settings().bulk_cpu_niceness)
    return nullcontext()


def _run_pipeline(chunks: Iterable[ChunkRange | tuple[str, list[Intent]]], traffic: Traffic,
                  progress: Progress | None, dispatch: bool, window: int, fallback_rounds: int,
                  dispatch_size: int) -> PipelineResult:
    logger = get_run_logger()
    bulk, urgent = traffic == "bulk", traffic == "urgent"
    result = PipelineResult()
    reserving: deque[PrefectFuture[ChunkReservation]] = deque()
    sending: list[tuple[PrefectFuture[DispatchReport], int]] = []

    def harvest(block: bool) -> None:
        for item in list(sending):
            future, customers = item
            if block or _finished(future):
                result.report.merge(future.result())
                sending.remove(item)
                if progress is not None:
                    progress.advance(customers)

    def reserved(chunk: ChunkReservation) -> None:
        result.customers += chunk.customers
        result.reserved.update(chunk.counts)
        ids = chunk.message_ids
        if dispatch and ids:
            for start in range(0, len(ids), dispatch_size):
                part = ids[start : start + dispatch_size]
                future = dispatch_task.submit(chunk.label, limit=len(part), message_runs=id_runs(part),
                                              pace_patience=0.0, pace_wait=CHUNK_PACE_WAIT, bulk=bulk)
                sending.append((future, chunk.customers if start == 0 else 0))
        elif progress is not None:
            progress.advance(chunk.customers)
        harvest(block=False)

    for chunk in chunks:
        label, work = (chunk.label, chunk) if isinstance(chunk, ChunkRange) else chunk
        result.chunks += 1
        reserving.append(reserve_task.submit(label, work, bulk))
        if urgent and result.chunks == 1:  # the first chunk goes out before the next is reserved
            reserved(reserving.popleft().result())
            harvest(block=True)
            continue
        # A reserved chunk goes to dispatch at once, not when the window happens to be full.
        while reserving and (len(reserving) >= window or _finished(reserving[0])):
            reserved(reserving.popleft().result())
    while reserving:
        reserved(reserving.popleft().result())
    harvest(block=True)
    waiting = result.report.take_waiting() if dispatch else {}
    if waiting:  # one dispatch follows every message that waits for its rate, as its time comes
        result.report.merge(dispatch_task("paced", limit=0, message_ids=sorted(waiting), waiting=waiting))

    if dispatch:
        fallbacks, report = fall_back(list(result.report.failures), fallback_rounds)
        result.fallbacks.update(fallbacks)
        result.report.merge(report)
    if progress is not None:
        progress.finish()
    logger.info("reserved %s; dispatched %s", dict(result.reserved) or "nothing",
                {o: result.report.total(o) for o in OUTCOMES if result.report.total(o)} or "nothing")
    return result


def fall_back(failures: list[Failure], rounds: int, label: str = "round"
              ) -> tuple[Counter[str], DispatchReport]:
    """Reserves the next channel for the failures that warrant one and dispatches it at once, up to
    ``rounds`` times (a fallback can fail too). Must run inside a flow. Returns the reserved rows
    per status and what became of them."""
    counts: Counter[str] = Counter()
    report = DispatchReport()
    for round_ in range(1, rounds + 1):
        if not failures:
            break
        chunk = fallback_task(f"{label}-{round_}", failures)
        counts.update(chunk.counts)
        if not chunk.message_ids:
            break
        sent = dispatch_task(f"fallback-{label}-{round_}", limit=len(chunk.message_ids),
                             message_runs=id_runs(chunk.message_ids))
        report.merge(sent)
        failures = list(sent.failures)
    return counts, report


# --- what the run says --------------------------------------------------------------------


def summary_markdown(title: str, facts: dict[str, Any], ledger: LedgerSummary, run: PipelineResult) -> str:
    """The run's human summary: what it did this time, and where its messages stand overall."""
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items() if v not in (None, "")]
    new = ", ".join(f"{n} {s}" for s, n in sorted(run.reserved.items())) or "nothing"
    lines += [f"- **this run reserved**: {new}", ""]
    if run.reserved and not run.reserved.keys() - {"duplicate"}:
        lines += ["Every customer already had this message in the ledger: nothing was sent twice.", ""]
    lines += ["## Messages per channel", "", "| channel | status | reason | messages |", "|---|---|---|---|"]
    lines += [f"| {r['channel']} | {r['status']} | {r['reason']} | {r['messages']} |" for r in ledger.table()]
    if not ledger.rows:
        lines.append("| - | - | - | 0 |")
    if run.fallbacks:
        fallbacks = ", ".join(f"{n} {s}" for s, n in sorted(run.fallbacks.items()))
        lines += ["", f"Fallbacks reserved: {fallbacks}"]
    body = dispatch_markdown(run.report, title="Dispatched by this run").replace("# ", "## ", 1)
    return "\n".join(lines) + "\n\n" + body


def publish(key: str, title: str, facts: dict[str, Any], ledger: LedgerSummary, run: PipelineResult) -> None:
    """The run's table and markdown artifacts (personal data masked by the helpers)."""
    summary_table_artifact(f"{key}-outcomes", ledger.table(), description=f"{title}: messages per channel, "
                           "status and reason")
    markdown_summary(f"{key}-summary", summary_markdown(title, facts, ledger, run), description=title)
