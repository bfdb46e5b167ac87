"""The benchmark: ``python -m bench.run [--quick] [options]`` (``make bench``).

Generates synthetic customers (``bench.synth``) and measures, in one run, against fake providers
in a process of their own (real SDKs, ``--latency-ms`` added to every answer) and one Prefect server:

1. the campaign flow end to end for each N on SQLite and PostgreSQL: wall time, customers per
   second, where the effort goes (plan/reserve, render, provider calls, claim/compose/record), peak RSS;
2. baseline A, the obvious Prefect flow (one task per message), on a smaller audience: cost per message;
3. baseline B, the bare SDK loop (sequential, no caps, templates or ledger): time for the same N;
   baseline C, the best hand-written sender (personalizations of 1,000, template rendered once, the
   same concurrency, no ledger, caps or policy), on every campaign's database: ours / C;
4. the outage notice for the affected tenth of the largest audience: time to the first and last
   message handed to a provider;
5. scale-out on PostgreSQL: two concurrent campaigns whose chunk tasks run on a Dask cluster of
   1, 2, 4 worker processes, caps checked at the fakes;
6. memory: peak RSS of a plan (decide only) over 10k, 100k and 1M customers;
7. reports: a campaign's report and the 30-day overview over 100,000 messages and about 300,000
   delivery events (``bench.bench_report``), on SQLite and PostgreSQL.

Each measurement runs in a fresh subprocess (``bench.measure``), so peak RSS is its own. Results go
to ``<out>/RESULTS.md`` (the notes below its ``<!-- notes -->`` marker are kept), ``results.json`` and
PNG plots. ``--quick`` runs every piece on small numbers into ``./bench-quick/`` to check it works.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.databases import database, postgres_available
from bench.fakes_process import FakesProcess
from bench.measure import RESULT_PREFIX, compile_sources
from bench.synth import seed_customers, seed_marketing_history

BENCH_DIR = Path(__file__).resolve().parent
NOTES_MARKER = "<!-- notes -->"


def log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


# --- infrastructure ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its children."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def wait_until_idle(pid: int, *, busy: float = 0.05, timeout: float = 300.0) -> float:
    """Waits until process ``pid`` and its children use under ``busy`` CPU seconds per second.

    The Prefect server keeps working through a run's events after the run has returned (an
    outage measured right after a thousand one-message tasks handed its first message over after
    33 s instead of 1); the next measurement must not pay for it. Returns the seconds waited."""
    started = time.monotonic()
    before = process_tree_cpu(pid)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = process_tree_cpu(pid)
        if now - before < busy:
            break
        before = now
    return time.monotonic() - started


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[tuple[str, int]]:
    """A Prefect server of our own (fresh database in ``home``) shared by every measurement."""
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Prefect server did not start") from None
                time.sleep(0.5)
        yield api, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


class Children:
    """Runs measurements in fresh subprocesses with the fakes' and Prefect's settings."""

    def __init__(self, env: dict[str, str], logs: Path, profile: Path | None = None,
                 server_pid: int | None = None) -> None:
        self.env, self.logs, self.profile, self.server_pid = env, logs, profile, server_pid

    def run(self, module: str, args: list[str], url: str, label: str) -> dict[str, Any]:
        path = os.pathsep.join(filter(None, [str(BENCH_DIR.parent), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, **self.env, "ORCH_DATABASE_URL": url, "PYTHONPATH": path}
        log_file = self.logs / f"{label}.log"
        command = [sys.executable, "-m", module, *args]
        if self.profile is not None:
            # Collapsed stacks of the thread holding the GIL (where the CPU goes), for flamegraph.pl
            # or speedscope.
            py_spy = Path(sys.executable).with_name("py-spy")
            command = [str(py_spy), "record", "--gil", "--subprocesses", "--rate", "50", "--format", "raw",
                       "--output", str(self.profile.resolve() / f"{label}.folded"), "--", *command]
        server_cpu = 0.0
        if self.server_pid is not None:
            wait_until_idle(self.server_pid)  # the previous run's events are not this run's cost
            server_cpu = process_tree_cpu(self.server_pid)
        with open(log_file, "w") as err:
            done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                                  cwd=self.logs)
        lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if done.returncode != 0 or not lines:
            tail = log_file.read_text()[-3000:]
            raise RuntimeError(f"{label} failed (exit {done.returncode}):\n{tail}")
        result = json.loads(lines[-1].removeprefix(RESULT_PREFIX))
        if self.server_pid is not None:  # what the run cost Prefect's server, backlog included
            wait_until_idle(self.server_pid)
            result["server_cpu_s"] = process_tree_cpu(self.server_pid) - server_cpu
        return result

    def measure(self, kind: str, url: str, label: str, **params: Any) -> dict[str, Any]:
        return self.run("bench.measure", [kind, json.dumps(params)], url, label)


# --- the measurements ------------------------------------------------------------------------


def _sent_at_fakes(tally: dict[str, Any]) -> int:
    return sum(p["accepted"] for p in tally.values())


def end_to_end(args: argparse.Namespace, children: Children, fakes: FakesProcess, tmp: Path,
               results: dict[str, Any]) -> None:
    """Campaign per backend and N; on the same databases plan-only memory, baselines and the outage."""
    largest = max(args.sizes)
    for backend in args.backends:
        for n in args.sizes:
            with database(backend, tmp) as url:
                seeded = seed_customers(url, n)
                log(f"{backend} N={n:,}: seeded in {seeded['seconds']:.1f} s")
                if backend == "sqlite" and n in args.memory_sizes:
                    plan = children.measure("plan", url, f"plan-{n}", n=n)
                    results["memory"].append({"n": n, **plan})
                    log(f"  plan only: {plan['customers_per_s']:,.0f} customers/s, "
                        f"peak RSS {plan['peak_rss_mb']:.0f} MB")
                fakes.reset()
                run = children.measure("campaign", url, f"campaign-{backend}-{n}", n=n,
                                       chunk_size=args.chunk_size)
                tally = fakes.tally()
                run.update(backend=backend, n=n, fakes=tally, sent_at_fakes=_sent_at_fakes(tally))
                results["campaign"].append(run)
                log(f"  campaign: {run['wall_s']:.1f} s, {run['customers_per_s']:,.0f} customers/s, "
                    f"sent {run['dispatched'].get('sent', 0):,} (fakes accepted {run['sent_at_fakes']:,}), "
                    f"peak RSS {run['peak_rss_mb']:.0f} MB")
                if "baseline_c" not in args.skip:
                    fakes.reset()
                    best = children.measure("baseline_c", url, f"baseline-c-{backend}-{n}", n=n)
                    run["best_sender"] = {**best, "fakes": fakes.tally()}
                    run["vs_best"] = run["wall_s"] / best["wall_s"]
                    log(f"  baseline C (best hand-written sender): {best['wall_s']:.1f} s; "
                        f"ours / C = {run['vs_best']:.2f}")
                if backend == args.backends[0] and n == min(args.sizes) and "baselines" not in args.skip:
                    baselines(args, children, fakes, url, n, results)
                if n == largest and "outage" not in args.skip:
                    fakes.reset()
                    notice = children.measure("outage", url, f"outage-{backend}", n=n // 10)
                    notice.update(backend=backend, n=n, fakes=fakes.tally())
                    results["outage"].append(notice)
                    log(f"  outage for {notice['customers']:,} customers: first handed to a provider after "
                        f"{notice['first_handed_s']:.2f} s, last after {notice['last_handed_s']:.1f} s")


def baselines(args: argparse.Namespace, children: Children, fakes: FakesProcess, url: str, n: int,
              results: dict[str, Any]) -> None:
    fakes.reset()
    bare_n = min(n, args.bare_max)
    bare = children.measure("baseline_b", url, f"baseline-b-{bare_n}", n=bare_n)
    bare.update(n=bare_n, fakes=fakes.tally())
    results["baseline_b"] = bare
    log(f"  baseline B (bare SDK loop, {bare_n:,} messages): {bare['ms_per_message']:.2f} ms/message")
    fakes.reset()
    obvious = children.measure("baseline_a", url, f"baseline-a-{args.baseline_a}", n=args.baseline_a)
    obvious.update(n=args.baseline_a, fakes=fakes.tally())
    results["baseline_a"] = obvious
    log(f"  baseline A (one Prefect task per message, {args.baseline_a:,}): "
        f"{obvious['ms_per_message']:.2f} ms/message")


def memory_large(args: argparse.Namespace, children: Children, tmp: Path, results: dict[str, Any]) -> None:
    """Plan-only runs for memory sizes beyond the end-to-end sizes (SQLite)."""
    for n in sorted(set(args.memory_sizes) - {r["n"] for r in results["memory"]}):
        with database("sqlite", tmp) as url:
            seeded = seed_customers(url, n)
            log(f"sqlite N={n:,}: seeded in {seeded['seconds']:.1f} s")
            plan = children.measure("plan", url, f"plan-{n}", n=n)
            results["memory"].append({"n": n, **plan})
            log(f"  plan only: {plan['customers_per_s']:,.0f} customers/s, "
                f"peak RSS {plan['peak_rss_mb']:.0f} MB")


def scale_out(args: argparse.Namespace, children: Children, fakes: FakesProcess, tmp: Path,
              results: dict[str, Any]) -> None:
    for workers in args.workers:
        with database("postgres", tmp) as url:
            seed_customers(url, args.scale_n)
            history = seed_marketing_history(url, every=10)
            fakes.reset()
            run = children.run("bench.scaleout", ["--workers", str(workers), "--chunk-size",
                                                  str(args.chunk_size)], url, f"scaleout-{workers}")
            tally = fakes.tally(history)
            run.update(
                n=args.scale_n, history_customers=len(history), fakes=tally,
                sent_at_fakes=_sent_at_fakes(tally),
                max_per_address=max(p["max_per_address"] for p in tally.values()),
                history_customers_reached=sum(p["watched_accepted"] for p in tally.values()),
            )
            run["caps_hold"] = run["max_per_address"] <= 1 and run["history_customers_reached"] == 0
            results["scaleout"].append(run)
            log(f"scale-out, {workers} worker(s): {run['customers_per_s']:,.0f} customers/s "
                "over two campaigns, "
                f"{run['sent_at_fakes']:,} accepted, at most {run['max_per_address']} per address, "
                f"{run['history_customers_reached']} to capped customers")


# --- the report --------------------------------------------------------------------------------


def reports(args: argparse.Namespace, tmp: Path, results: dict[str, Any]) -> None:
    from bench.bench_report import measure as measure_report

    for backend in args.backends:
        log(f"report over {args.report_messages:,} messages on {backend}")
        results["report"].append(measure_report(backend, args.report_messages, 3, tmp))


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)
    from importlib.metadata import version

    pg = "-"
    with contextlib.suppress(Exception):
        from sqlalchemy import text

        from tests.support import postgres

        server = postgres.ensure_server()[0]
        if server:
            with postgres.admin_engine(server).connect() as conn:
                pg = str(conn.execute(text("SHOW server_version")).scalar())
    return {"cpu": model, "cores": os.cpu_count(), "memory_mb": memory, "os": platform.platform(),
            "python": platform.python_version(), "prefect": version("prefect"),
            "sqlite": sqlite3.sqlite_version,
            "postgresql": pg, "sendgrid": version("sendgrid"), "twilio": version("twilio")}


def _cpu_ms(run: dict[str, Any]) -> float:
    """CPU milliseconds per message: the measured process plus what it cost the Prefect server."""
    return 1000 * (run["cpu_s"] + run["server_cpu_s"]) / run["n"]


def add_ratios(results: dict[str, Any]) -> None:
    """Ratios against the baselines, all from this run."""
    bare, obvious = results.get("baseline_b"), results.get("baseline_a")
    for run in results["campaign"]:
        ours = 1000 * run["wall_s"] / run["n"]
        run["ms_per_customer"] = ours
        if bare:
            run["bare_loop_s"] = bare["ms_per_message"] * run["n"] / 1000
            run["vs_bare_loop"] = run["wall_s"] / run["bare_loop_s"]
            run["bare_loop_extrapolated"] = bare["n"] < run["n"]
        if obvious:
            run["obvious_flow_cost_ratio"] = obvious["ms_per_message"] / ours
            if "server_cpu_s" in run and "server_cpu_s" in obvious:
                run["cpu_ms_per_customer"] = _cpu_ms(run)
                run["obvious_flow_cpu_ratio"] = _cpu_ms(obvious) / run["cpu_ms_per_customer"]
    scaled = results["scaleout"]
    if scaled:
        base = scaled[0]["customers_per_s"]
        for run in scaled:
            run["speedup"] = run["customers_per_s"] / base


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def write_report(results: dict[str, Any], out: Path, command: str) -> Path:
    m, lines = results["machine"], []
    lines += ["# Benchmark results", "",
              f"- **date**: {results['started']} to {results['ended']} (UTC)",
              f"- **machine**: {m['cpu']}, {m['cores']} cores, {m['memory_mb']:,} MB; {m['os']}",
              f"- **software**: Python {m['python']}, Prefect {m['prefect']}, SQLite {m['sqlite']}, "
              f"PostgreSQL {m['postgresql']}, sendgrid {m['sendgrid']}, twilio {m['twilio']}",
              f"- **load average** (1 min) at start {results['load'][0]:.2f}, "
              f"at end {results['load'][1]:.2f} "
              "(the machine is shared: other work running at the same time slows every figure)",
              f"- **fake providers**: a separate process, {results['latency_ms']:g} ms added to every answer "
              "(stands in for the network); real SDKs; adapter concurrency "
              f"{results['provider_concurrency']} per channel",
              f"- **command**: `{command}`", ""]
    lines += ["## 1. Campaign end to end (plus baseline B, the bare SDK loop, for the same N)", "",
              "CPU s: user + system time of the measured process (steadier than wall time on a shared "
              "machine). Stage seconds are summed over the threads doing the work (they overlap), so they "
              "show where effort goes. `vs bare loop` = campaign time / bare SDK loop time for the same N "
              "(target <= 1.0). `C s`: baseline C, the best hand-written sender, on the same database "
              "and fakes right after the campaign; `ours / C` (target <= 2.0 on SQLite at 100,000).", "",
              "| backend | N | wall s | CPU s | customers/s | ms/customer | sent (fakes) | plan+reserve s "
              "| render s | provider calls s | claim+compose+record s | peak RSS MB | bare loop s "
              "| vs bare loop | C s | ours / C |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["campaign"]:
        extrapolated = " (extrapolated)" if r.get("bare_loop_extrapolated") else ""
        lines.append(
            f"| {r['backend']} | {r['n']:,} | {_f(r['wall_s'])} | {_f(r.get('cpu_s'))} | "
            f"{_f(r['customers_per_s'], 0)} | "
            f"{_f(r['ms_per_customer'], 2)} | {r['dispatched'].get('sent', 0):,} ({r['sent_at_fakes']:,}) | "
            f"{_f(r['plan_reserve_s'])} | {_f(r['render_s'])} | {_f(r['provider_calls_s'])} | "
            f"{_f(r['claim_compose_record_s'])} | {_f(r['peak_rss_mb'], 0)} | "
            f"{_f(r.get('bare_loop_s'))}{extrapolated} | {_f(r.get('vs_bare_loop'), 2)} | "
            f"{_f((r.get('best_sender') or {}).get('wall_s'))} | {_f(r.get('vs_best'), 2)} |")
    bare = results.get("baseline_b")
    if bare:
        lines += ["", f"Baseline B measured on {bare['n']:,} messages: {bare['wall_s']:.1f} s, "
                  f"{bare['ms_per_message']:.2f} ms/message (one SendGrid SDK call after another); "
                  "for larger N "
                  "its time is that rate times N (it does the same work for every message)."]
    obvious = results.get("baseline_a")
    if obvious:
        lines += ["", "## 2. Baseline A: the obvious Prefect flow (one task per message)", "",
                  f"Baseline A sent {obvious['n']:,} messages in {_f(obvious['wall_s'])} s: "
                  f"{_f(obvious['ms_per_message'], 2)} ms per message of wall time; its CPU (its own "
                  f"process plus what it cost the Prefect server, backlog included) was "
                  f"{_f(obvious.get('cpu_s'))} + {_f(obvious.get('server_cpu_s'))} s = "
                  f"{_f(_cpu_ms(obvious) if 'server_cpu_s' in obvious else None, 2)} ms per message. "
                  "Ours per customer, every campaign of table 1 (target: A at least 20x the cost):", "",
                  "| backend | N | ours wall ms/customer | A / ours (wall) | ours CPU ms/customer (process + "
                  "Prefect server) | A / ours (CPU) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['backend']} | {r['n']:,} | {_f(r['ms_per_customer'], 2)} | "
                  f"{_f(r.get('obvious_flow_cost_ratio'))} | {_f(r.get('cpu_ms_per_customer'), 2)} | "
                  f"{_f(r.get('obvious_flow_cpu_ratio'))} |" for r in results["campaign"]]
    if results["outage"]:
        lines += ["", "## 3. Outage notice latency (the affected tenth of the largest audience)", "",
                  "From the flow call to the first / last message handed to a provider adapter.", "",
                  "| backend | affected customers | first handed s | last handed s | wall s | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['backend']} | {r['customers']:,} | {_f(r['first_handed_s'], 2)} | "
                  f"{_f(r['last_handed_s'])} | {_f(r['wall_s'])} | {_f(r['peak_rss_mb'], 0)} |"
                  for r in results["outage"]]
    if results["scaleout"]:
        lines += ["", "## 4. Scale-out on PostgreSQL (prefect-dask DaskTaskRunner, LocalCluster of k "
                  "processes)", "", "Two marketing campaigns at once over the same audience; 10% of "
                  "customers already had a "
                  "marketing email within the 2-day cap. Caps hold when no address got more than one "
                  "request and no capped customer got any, counted at the fakes.", "",
                  "| workers | customers (2 campaigns) | wall s | customers/s | speed-up | accepted at fakes "
                  "| max per address | capped customers reached | caps hold |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['workers']} | {r['customers']:,} | {_f(r['wall_s'])} | "
                  f"{_f(r['customers_per_s'], 0)} | "
                  f"{_f(r['speedup'], 2)} | {r['sent_at_fakes']:,} | {r['max_per_address']} | "
                  f"{r['history_customers_reached']} | {'yes' if r['caps_hold'] else 'NO'} |"
                  for r in results["scaleout"]]
    if results["memory"]:
        lines += ["", "## 5. Memory: plan (decide only) over the whole audience, SQLite", "",
                  "| N | customers/s | peak RSS MB |", "|---|---|---|"]
        lines += [f"| {r['n']:,} | {_f(r['customers_per_s'], 0)} | {_f(r['peak_rss_mb'], 0)} |"
                  for r in sorted(results["memory"], key=lambda r: r["n"])]
        lines += ["", "Peak RSS of the full campaign runs is in table 1."]
    lines += report_section(results.get("report") or [])
    lines += ["", "Plots: `throughput_vs_n.png`, `throughput_vs_workers.png`, `memory_vs_n.png`.", ""]
    path = out / "RESULTS.md"
    notes = ""
    if path.exists() and NOTES_MARKER in path.read_text():
        notes = path.read_text().split(NOTES_MARKER, 1)[1]
    path.write_text("\n".join(lines) + "\n" + NOTES_MARKER + (notes or "\n"))
    return path


def write_notes_section(out: Path, markers: tuple[str, str], lines: list[str]) -> None:
    """Puts ``lines`` (which begin and end with ``markers``) into ``out/RESULTS.md``: in place of
    the section between the same markers if there is one, else at the end of the notes."""
    path = out / "RESULTS.md"
    text = path.read_text() if path.exists() else NOTES_MARKER + "\n"
    if markers[0] in text:
        before, rest = text.split(markers[0], 1)
        text = before + "\n".join(lines) + rest.split(markers[1], 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(text)


def report_section(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## 6. Reports over a large history (`bench.bench_report`)", "",
             "One campaign's messages (80% email, 20% SMS), their delivery events and replies, "
             "bulk-inserted; each report built 3 times: the first (cold) and the median wall time, and "
             "the median CPU time (the measuring process, plus on PostgreSQL its server backend): "
             "on a busy machine wall time waits for a core, CPU time does not. Target: under 2 s.", "",
             "| backend | messages | events | replies | campaign report first s | median s | CPU s "
             "| overview (30 days, flags) first s | median s | CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        times = [_f(r[f"{part}_{kind}"], 2) for part in ("campaign", "overview")
                 for kind in ("first_s", "median_s", "cpu_s")]
        lines.append(f"| {r['backend']} | {r['messages']:,} | {r['events']:,} | {r['replies']:,} | "
                     + " | ".join(times) + " |")
    return lines


# --- main ---------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(float(x)) for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers, to check that everything works")
    parser.add_argument("--sizes", type=_ints, help="campaign audiences (default 10000,100000)")
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--latency-ms", type=float, default=5.0, help="added by the fakes to each answer")
    parser.add_argument("--concurrency", type=int, default=8, help="provider calls in flight per adapter")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--baseline-a", type=int,
                        help="messages for baseline A (default 10000, the smallest campaign)")
    parser.add_argument("--bare-max", type=int, help="messages baseline B sends at most (default 10000)")
    parser.add_argument("--memory-sizes", type=_ints,
                        help="plan-only audiences (default 10000,100000,1000000)")
    parser.add_argument("--workers", type=_ints, help="scale-out worker processes (default 1,2,4)")
    parser.add_argument("--scale-n", type=int, help="scale-out audience (default 10000)")
    parser.add_argument("--skip", default="",
                        help="comma-separated: e2e, baselines, baseline_c, outage, memory, scaleout, report")
    parser.add_argument("--report-messages", type=int, help="messages behind the report (default 100000)")
    parser.add_argument("--profile", type=Path, help="also write py-spy stacks per measurement here")
    parser.add_argument("--out", type=Path, help="where results go (default bench/, quick: ./bench-quick/)")
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {"sizes": [1000] if quick else [10_000, 100_000], "baseline_a": 100 if quick else 10_000,
                "bare_max": 500 if quick else 10_000,
                "memory_sizes": [1000, 5000] if quick else [10_000, 100_000, 1_000_000],
                "workers": [1, 2] if quick else [1, 2, 4], "scale_n": 1000 if quick else 10_000,
                "report_messages": 5000 if quick else 100_000,
                "out": Path("bench-quick") if quick else BENCH_DIR}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.backends = [b for b in args.backends.split(",") if b]
    args.skip = set(filter(None, args.skip.split(",")))
    if "postgres" in args.backends and not postgres_available():
        log("PostgreSQL is not reachable: running SQLite only, no scale-out")
        args.backends = [b for b in args.backends if b != "postgres"]
        args.skip.add("scaleout")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    compile_sources()
    results: dict[str, Any] = {"started": f"{datetime.now(UTC):%Y-%m-%d %H:%M}", "load": [os.getloadavg()[0]],
                               "latency_ms": args.latency_ms, "provider_concurrency": args.concurrency,
                               "machine": machine(), "campaign": [], "outage": [], "memory": [],
                               "scaleout": [], "report": []}
    command = " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])])
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        with FakesProcess(latency=args.latency_ms / 1000) as fakes, \
                prefect_server(tmp / "prefect") as (api, server_pid):
            assert fakes.endpoints is not None
            env = {**fakes.endpoints.env(), "PREFECT_API_URL": api,
                   "ORCH_PROVIDER_CONCURRENCY": str(args.concurrency), "ORCH_OUTBOX_DIR": str(tmp / "outbox")}
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            children = Children(env, tmp, args.profile, server_pid)
            log(f"fakes and Prefect server up; logs in {tmp}")
            if "e2e" not in args.skip:
                end_to_end(args, children, fakes, tmp, results)
            if "memory" not in args.skip:
                memory_large(args, children, tmp, results)
            if "scaleout" not in args.skip:
                scale_out(args, children, fakes, tmp, results)
            if "report" not in args.skip:
                reports(args, tmp, results)
    except BaseException:
        log(f"failed; logs kept in {tmp}")
        raise
    results["ended"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    results["load"].append(os.getloadavg()[0])
    add_ratios(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    from bench.plot import make_plots

    make_plots(results, args.out)
    log(f"results in {write_report(results, args.out, command)}")
    if args.profile:
        log(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
