"""Scale-out: the campaign's chunk tasks fanned out to a Dask cluster (prefect-dask's DaskTaskRunner).

    python -m bench.scaleout --workers 2              # a LocalCluster of 2 worker processes
    python -m bench.scaleout --address tcp://HOST:8786  # an existing cluster, e.g. across machines

Two different marketing campaigns run at the same time against the same audience (two flow runs,
each a process of its own, sharing the cluster), so the 2-day marketing cap (at most one) must
hold under concurrency: every customer gets at most one of the two, and customers who already had
a marketing email (history seeded by ``bench.run``) get neither. ``bench.run`` checks both at the
fake provider. Prints ``RESULT <json>`` with the wall time of the pair.

Across machines (all of them reach the same PostgreSQL, Prefect server and providers):

    machine A:  dask scheduler                          # listens on tcp://A:8786
    machine B+: dask worker tcp://A:8786 --nworkers 2 --nthreads 1
    each needs the project installed and the same ORCH_DATABASE_URL, ORCH_SENDGRID_*... and
    PREFECT_API_URL in its environment (the workers run the reserve and dispatch tasks);
    then on any machine:  python -m bench.scaleout --address tcp://A:8786
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench.measure import MARKETING_FACTS, RESULT_PREFIX, peak_rss_mb

CAMPAIGNS = ("scale-a", "scale-b")


def run_campaign_on(address: str, name: str, chunk_size: int) -> dict[str, Any]:
    """One campaign flow run whose tasks go to the Dask cluster at ``address`` (the supported
    setting: ``ORCH_TASK_RUNNER=dask``, ``ORCH_DASK_ADDRESS``).

    Not instrumented: Dask pickles the task functions with the globals they use, and the stage
    clock's lock cannot travel.
    """
    os.environ.update({"ORCH_TASK_RUNNER": "dask", "ORCH_DASK_ADDRESS": address})
    from flows.campaign import campaign
    from flows.common import chunk_task_runner
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    started = time.perf_counter()
    flow = campaign.with_options(task_runner=chunk_task_runner(max_workers=4))
    result = flow(name=name, segment="all", template="spring_sale", data=MARKETING_FACTS,
                  chunk_size=chunk_size)
    return {"wall_s": time.perf_counter() - started, "customers": result["customers"],
            "reserved": result["reserved"], "dispatched": result["dispatched"], "peak_rss_mb": peak_rss_mb()}


def run_pair(address: str, chunk_size: int) -> dict[str, Any]:
    """Both campaigns at once, each in a process of its own; wall time from start to the last end."""
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-m", "bench.scaleout", "--address", address, "--campaign", name,
                          "--chunk-size", str(chunk_size)], stdout=subprocess.PIPE, text=True)
        for name in CAMPAIGNS
    ]
    results = {}
    for name, child in zip(CAMPAIGNS, children, strict=True):
        out, _ = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"campaign {name} failed (exit {child.returncode})")
        results[name] = json.loads(out.strip().splitlines()[-1].removeprefix(RESULT_PREFIX))
    wall = time.perf_counter() - started
    customers = sum(r["customers"] for r in results.values())
    sent = sum(r["dispatched"].get("sent", 0) for r in results.values())
    return {"wall_s": wall, "customers": customers, "customers_per_s": customers / wall, "sent": sent,
            "campaigns": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of a local cluster")
    parser.add_argument("--address", help="an existing Dask scheduler instead of a local cluster")
    parser.add_argument("--campaign", help=argparse.SUPPRESS)  # internal: run one campaign of the pair
    parser.add_argument("--chunk-size", type=int, default=1000)
    args = parser.parse_args()
    if args.campaign:
        result = run_campaign_on(args.address, args.campaign, args.chunk_size)
    elif args.address:
        result = run_pair(args.address, args.chunk_size)
    else:
        from dask.distributed import LocalCluster

        os.environ.setdefault("PYTHONWARNINGS", "ignore")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            result = {"workers": args.workers, **run_pair(cluster.scheduler_address, args.chunk_size)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
