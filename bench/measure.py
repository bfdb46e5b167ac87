"""One measurement in a fresh process: ``python -m bench.measure KIND '{"n": 10000, ...}'``.

``bench.run`` starts each measurement here so that peak RSS (``ru_maxrss``) belongs to that
measurement alone. The database (``ORCH_DATABASE_URL``), the fakes (``ORCH_SENDGRID_HOST``...) and
the Prefect server (``PREFECT_API_URL``) come from the environment. The last line printed is
``RESULT <json>``.

Stage times of a campaign are summed over the threads that did the work (reservation, dispatch
and provider calls overlap in the pipeline), so they show where the effort goes, not a timeline.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

MARKETING_FACTS = {"offer": "20% off every annual plan", "code": "SPRING20", "ends_on": "Sunday 30 March",
                   "shop_url": "https://example.com/pricing"}
RESULT_PREFIX = "RESULT "


def compile_sources() -> None:
    """Byte-compiles the project as ``make`` installs it (see the Makefile's ``COMPILE``): on a machine
    that says not to write bytecode, each measured process would otherwise compile it again, a cost
    no installation has."""
    import compileall
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for package in ("orchestrator", "flows", "channels"):
        compileall.compile_dir(root / package, quiet=1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def cpu_seconds() -> float:
    """User + system CPU time of this process: steadier than wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StageClock:
    """Seconds spent inside wrapped functions, summed per stage over all threads, plus the moments
    the first provider call started and the last one ended."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.first_send: float | None = None
        self.last_send: float | None = None
        self._lock = threading.Lock()

    def wrap(self, stage: str, fn: Callable[..., Any], *, send: bool = False) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if send:
                with self._lock:
                    self.first_send = self.first_send or started
            try:
                return fn(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                with self._lock:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + ended - started
                    if send:
                        self.last_send = max(self.last_send or ended, ended)

        return timed


def instrument() -> StageClock:
    """Wraps reservation, rendering, provider calls and dispatch as the flows call them."""
    import flows.common
    import flows.pipeline
    import orchestrator.dispatch.compose
    from channels.sendgrid.adapter import SendGridEmailAdapter
    from channels.twilio.adapter import TwilioSmsAdapter
    from channels.x.adapter import XSocialAdapter
    from orchestrator.local_channels.phone import PhoneTaskAdapter

    clock = StageClock()
    flows.pipeline.reserve_chunk = clock.wrap("plan_reserve", flows.pipeline.reserve_chunk)
    compose = orchestrator.dispatch.compose
    compose.render_messages = clock.wrap("render", compose.render_messages)
    flows.common.dispatch_due = clock.wrap("dispatch_total", flows.common.dispatch_due)
    for adapter in (SendGridEmailAdapter, TwilioSmsAdapter, XSocialAdapter, PhoneTaskAdapter):
        adapter.send = clock.wrap("provider_calls", adapter.send, send=True)  # type: ignore[method-assign]
    return clock


def stages(clock: StageClock) -> dict[str, float]:
    s = clock.seconds
    other = s.get("dispatch_total", 0.0) - s.get("render", 0.0) - s.get("provider_calls", 0.0)
    return {"plan_reserve_s": s.get("plan_reserve", 0.0), "render_s": s.get("render", 0.0),
            "provider_calls_s": s.get("provider_calls", 0.0), "claim_compose_record_s": max(0.0, other)}


def campaign(n: int, name: str = "bench", chunk_size: int = 1000, **_: Any) -> dict[str, Any]:
    from flows.campaign import campaign as campaign_flow

    clock = instrument()
    started = time.perf_counter()
    result = campaign_flow(name=name, segment="all", template="spring_sale", data=MARKETING_FACTS,
                           chunk_size=chunk_size)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "customers": result["customers"], "customers_per_s": result["customers"] / wall,
            "reserved": result["reserved"], "dispatched": result["dispatched"], **stages(clock),
            "first_send_s": (clock.first_send or started) - started}


def outage(n: int, chunk_size: int = 500, segment: str = "us_east_outage", **_: Any) -> dict[str, Any]:
    from flows.outage import outage_notice

    clock = instrument()
    started_at, started = time.time(), time.perf_counter()
    result = outage_notice(incident_id="BENCH-1", status="investigating", severity="minor",
                           summary="Sign-in fails for some customers", segment=segment,
                           chunk_size=chunk_size, social_post=False)
    wall = time.perf_counter() - started
    first = (clock.first_send or started) - started
    last = (clock.last_send or started) - started
    return {"wall_s": wall, "started_at": started_at,
            "customers": result.get("customers", result.get("audience")), "first_handed_s": first,
            "last_handed_s": last, "dispatched": result.get("dispatched"), **stages(clock)}


def plan_only(n: int, chunk_size: int = 1000, **_: Any) -> dict[str, Any]:
    from orchestrator.policy.plan import plan_audience

    started = time.perf_counter()
    plan = plan_audience("all", "marketing", "spring_sale", chunk_size=chunk_size)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "customers": plan.customers, "customers_per_s": plan.customers / wall,
            "outcomes": dict(plan.outcomes)}


def baseline_a(n: int, **_: Any) -> dict[str, Any]:
    from bench.baselines import obvious_prefect_flow

    return obvious_prefect_flow(n)


def baseline_b(n: int, **_: Any) -> dict[str, Any]:
    from bench.baselines import bare_sdk_loop

    return bare_sdk_loop(n)


def baseline_c(n: int, **_: Any) -> dict[str, Any]:
    from bench.baselines import best_sender

    return best_sender(n)


KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "campaign": campaign, "outage": outage, "plan": plan_only, "baseline_a": baseline_a,
    "baseline_b": baseline_b, "baseline_c": baseline_c,
}


def main() -> None:
    kind, params = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = KINDS[kind](**params)
    result["peak_rss_mb"], result["cpu_s"] = peak_rss_mb(), cpu_seconds()
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
