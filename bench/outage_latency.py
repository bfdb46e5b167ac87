"""Outage notice latency from the trigger: ``python -m bench.outage_latency [--quick]``.

Measures, with a running Prefect server and the fake providers in a process of their own (which
answer 429 above the lane rates the policy declares: email 200 requests/s, SMS 1,000/s), the time
from support's trigger to the first request of the notice to a customer received by a fake provider,
and to the last (``--post``: the triggers also make their public post on the social channel, as
they do by default, and each sample says when it arrived):

- ``web``: ``POST /incidents`` to ``orchestrator serve`` (the flow run is created on the server and
  run at once by the web app's process, ``flows.trigger``);
- ``cli``: ``orchestrator outage notify`` with ``ORCH_SERVICE_URL`` set (a new process that hands
  the trigger to the web app, ``orchestrator.cli.service``);
- ``inproc``: ``orchestrator outage notify --in-process`` (a new process that runs the flow itself
  against the same Prefect server: what the command does without a service);
- idle, then while a campaign to the whole audience is dispatching on the same database and
  providers (the campaign must still complete, nothing sent twice).

The affected audience is the ``us_east_outage`` segment (a tenth of the customers). Results go to
``<out>/outage_latency.json``, a section of ``<out>/RESULTS.md`` (kept among its notes) and the
plot ``<out>/outage_latency.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from bench.databases import database
from bench.fakes_process import FakesProcess
from bench.measure import RESULT_PREFIX, compile_sources
from bench.run import BENCH_DIR, _free_port, log, prefect_server, write_notes_section
from bench.synth import seed_customers
from orchestrator.settings import REPO_ROOT

TOKEN = "bench-incident-token"
RATES = {"email": "200 requests/s", "sms": "1000/s"}
FAKE_RATES = {"sendgrid": 200.0, "twilio": 1000.0}
TRIGGERS = ("web", "cli", "inproc")
SECTION = ("<!-- outage-latency -->", "<!-- /outage-latency -->")


def _policy(tmp: Path) -> Path:
    data = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    data["rates"] = dict(RATES)
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Trigger:
    """Starts outage notices one way or the other and times them at the fakes."""

    def __init__(self, fakes: FakesProcess, env: dict[str, str], web: str, tmp: Path, post: bool) -> None:
        self.fakes, self.env, self.web, self.tmp, self.count = fakes, env, web, tmp, 0
        self.post = post  # the public post on the social channel that a trigger makes by default

    def sample(self, how: str) -> dict[str, Any]:
        self.count += 1
        marker = f"lat-{os.getpid()}-{self.count}"
        incident = {
            "incident_id": f"LAT-{self.count}",
            "status": "investigating",
            "severity": "minor",
            "summary": "Sign-in fails for some customers",
            "segment": "us_east_outage",
            "status_page_url": f"https://status.example.com/{marker}",
            "social_post": self.post,
        }
        started = time.time()
        child = None
        if how == "web":
            request = urllib.request.Request(
                f"{self.web}/incidents",
                data=json.dumps(incident).encode(),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 202
        else:
            orchestrator = Path(sys.executable).with_name("orchestrator")
            child = subprocess.Popen(
                [
                    str(orchestrator),
                    "outage",
                    "notify",
                    incident["incident_id"],
                    "--status",
                    "investigating",
                    "--severity",
                    "minor",
                    "--summary",
                    incident["summary"],
                    "--segment",
                    "us_east_outage",
                    "--status-page-url",
                    incident["status_page_url"],
                    *([] if self.post else ["--no-post"]),
                    "--json",
                    *(["--in-process"] if how == "inproc" else []),
                ],
                env={**os.environ, **self.env},
                stdout=subprocess.DEVNULL,
                stderr=open(self.tmp / f"cli-{self.count}.log", "w"),  # noqa: SIM115 - the child owns it
                cwd=self.tmp,
            )
        first = self._wait(started, marker, lambda seen: seen["first"] is not None, 60)
        done = self._settled(started, marker, child)
        if child is not None and child.returncode:
            log(f"  orchestrator outage notify failed ({child.returncode}): "
                f"{(self.tmp / f'cli-{self.count}.log').read_text()[-1500:]}")
        return {
            "how": how,
            "first_s": first["first"] - started if first["first"] else None,
            "last_s": done["last"] - started if done["last"] else None,
            "requests": done["requests"],
            "post_s": done["post"] - started if done["post"] else None,
        }

    def _wait(self, since: float, marker: str, ready: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            seen = self.fakes.marked(since, marker)
            if ready(seen) or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def _settled(self, since: float, marker: str, child: subprocess.Popen[bytes] | None) -> dict[str, Any]:
        """Waits until the notice's requests stop coming (its last one is then known)."""
        if child is not None:
            child.wait(timeout=600)
        last, quiet_since = None, time.monotonic()
        while time.monotonic() - quiet_since < 3.0:
            seen = self.fakes.marked(since, marker)
            if seen["requests"] != last:
                last, quiet_since = seen["requests"], time.monotonic()
            time.sleep(0.25)
        return seen


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    first = sorted(s["first_s"] for s in samples if s["first_s"] is not None)
    last = [s["last_s"] for s in samples if s["last_s"] is not None]
    if not first:
        return {"samples": len(samples), "missed": len(samples)}
    p95 = first[min(len(first) - 1, round(0.95 * (len(first) - 1)))]
    return {
        "samples": len(samples),
        "missed": len(samples) - len(first),
        "first_median_s": statistics.median(first),
        "first_p95_s": p95,
        "first_max_s": first[-1],
        "last_median_s": statistics.median(last) if last else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-outage-"))
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "load": [os.getloadavg()[0]],
        "n": args.n,
        "backend": args.backend,
        "rates": RATES,
        "post": args.post,
        "samples": [],
    }
    with (
        FakesProcess(latency=args.latency_ms / 1000) as fakes,
        prefect_server(tmp / "prefect") as (api, _),
        database(args.backend, tmp) as url,
    ):
        assert fakes.endpoints is not None
        fakes.enforce_rates(FAKE_RATES)
        seed_customers(url, args.n)
        port = _free_port()
        path = os.pathsep.join(filter(None, [str(BENCH_DIR.parent), os.environ.get("PYTHONPATH")]))
        env = {
            **fakes.endpoints.env(),
            "PREFECT_API_URL": api,
            "ORCH_PREFECT_API_URL": api,
            "ORCH_DATABASE_URL": url,
            "ORCH_INCIDENT_TOKEN": TOKEN,
            "ORCH_SERVICE_URL": f"http://127.0.0.1:{port}",
            "ORCH_POLICY_FILE": str(_policy(tmp)),
            "ORCH_OUTBOX_DIR": str(tmp / "outbox"),
            "PYTHONPATH": path,
        }
        orchestrator = Path(sys.executable).with_name("orchestrator")
        with open(tmp / "serve.log", "w") as serve_log:
            server = subprocess.Popen(
                [str(orchestrator), "serve", "--port", str(port)],
                env={**os.environ, **env},
                stdout=serve_log,
                stderr=subprocess.STDOUT,
                cwd=tmp,
            )
        web = f"http://127.0.0.1:{port}"
        try:
            _wait_for(f"{web}/healthz")
            time.sleep(args.warm_up)  # the web app loads what a notice needs in the background
            trigger = Trigger(fakes, env, web, tmp, args.post)
            for phase in ("idle", "campaign"):
                campaign = None
                if phase == "campaign":
                    fakes.reset()
                    fakes.enforce_rates(FAKE_RATES)
                    campaign = subprocess.Popen(
                        [sys.executable, "-m", "bench.measure", "campaign", json.dumps({"n": args.n})],
                        env={**os.environ, **env},
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                        cwd=tmp,
                    )
                    _wait_for_traffic(fakes)
                for i in range(args.samples):
                    how = TRIGGERS[i % len(TRIGGERS)]
                    if campaign is not None and campaign.poll() is not None:
                        log("  the campaign ended before all samples were taken")
                        break
                    sample = {"phase": phase, **trigger.sample(how)}
                    results["samples"].append(sample)
                    log(f"  {phase} {how}: first request after {sample['first_s']} s, "
                        f"last after {sample['last_s']} s")
                if campaign is not None:
                    out, _ = campaign.communicate(timeout=3600)
                    line = [x for x in out.splitlines() if x.startswith(RESULT_PREFIX)]
                    outcome = json.loads(line[-1].removeprefix(RESULT_PREFIX)) if line else {}
                    tally = fakes.tally()
                    results["campaign"] = {
                        "wall_s": outcome.get("wall_s"),
                        "dispatched": outcome.get("dispatched"),
                        "max_per_message": max(t["max_per_message"] for t in tally.values()),
                        "rate_limited": {k: t["rate_limited"] for k, t in tally.items()},
                    }
                    log(f"  campaign: {results['campaign']}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    results["load"].append(os.getloadavg()[0])
    for phase in ("idle", "campaign"):
        for how in TRIGGERS:
            chosen = [s for s in results["samples"] if s["phase"] == phase and s["how"] == how]
            if chosen:
                results.setdefault("summary", {})[f"{phase}-{how}"] = _summary(chosen)
    return results


def _wait_for(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer") from None
            time.sleep(0.3)


def _wait_for_traffic(fakes: FakesProcess, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while fakes.tally()["sendgrid"]["accepted"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "outage_latency.json").write_text(json.dumps(results, indent=2))
    _plot(results, out / "outage_latency.png")
    lines = [
        SECTION[0],
        "",
        "## Outage notice latency from the trigger (`python -m bench.outage_latency`)",
        "",
        f"{results['started']} UTC, {results['backend']}, {results['n']:,} customers (the affected tenth: "
        f"{results['n'] // 10:,}), lane rates {results['rates']} declared and enforced by the fakes (429 "
        f"above); load average {results['load'][0]:.2f} at start, {results['load'][-1]:.2f} at end. From "
        "the trigger to the first / last request of the notice to a customer received by a fake provider, "
        "with a running Prefect server; "
        f"{'with' if results.get('post') else 'no'} public post (`--post`). `web`: `POST /incidents` (the "
        "web app creates the flow run "
        "and runs it at once); `cli`: `orchestrator outage notify` handing the trigger to the web app "
        "(`ORCH_SERVICE_URL`); `inproc`: `orchestrator outage notify --in-process` (a new process runs the "
        "flow itself).",
        "",
        "| phase | trigger | samples | first: median s | first: p95 s | first: max s | last: median s |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, s in results.get("summary", {}).items():
        phase, how = key.split("-")
        lines.append(
            f"| {phase} | {how} | {s['samples']} | {_f(s.get('first_median_s'))} | "
            f"{_f(s.get('first_p95_s'))} | {_f(s.get('first_max_s'))} | {_f(s.get('last_median_s'))} |"
        )
    if "campaign" in results:
        c = results["campaign"]
        lines += [
            "",
            f"The campaign dispatching meanwhile: {_f(c['wall_s'])} s, dispatched {c['dispatched']}, "
            f"at most {c['max_per_message']} request per message at the fakes; 429s answered by the "
            f"fakes: {c['rate_limited']}.",
        ]
    lines += ["", "Plot: `outage_latency.png`.", "", SECTION[1]]
    write_notes_section(out, SECTION, lines)


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def _plot(results: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    keys = [
        f"{phase}-{how}" for phase in ("idle", "campaign") for how in TRIGGERS
        if f"{phase}-{how}" in results.get("summary", {})
    ]
    data = [
        [s["first_s"] for s in results["samples"] if f"{s['phase']}-{s['how']}" == k and s["first_s"]]
        for k in keys
    ]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(keys)), 4))
    ax.boxplot(data, showfliers=True)
    ax.set_xticks(range(1, len(keys) + 1), keys)
    ax.axhline(2.0, linestyle="--", linewidth=1, label="target median 2 s")
    ax.set_ylabel("trigger to first provider request (s)")
    ax.set_title(f"Outage notice latency, {results['n'] // 10:,} affected customers")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small numbers, to check that it works")
    parser.add_argument("--n", type=int, help="customers (default 100000; the campaign goes to all of them)")
    parser.add_argument(
        "--samples", type=int, help="triggers per phase, in turn web, cli and inproc (default 9)"
    )
    parser.add_argument("--backend", default="sqlite", help="sqlite or postgres")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument(
        "--warm-up", type=float, default=5.0, help="seconds between the web app start and the first trigger"
    )
    parser.add_argument(
        "--post", action="store_true",
        help="triggers make their public post on the social channel, as they do by default (the times "
             "are still to the first and last message to a customer)",
    )
    parser.add_argument("--out", type=Path, help="default bench/ (quick: ./bench-quick/)")
    args = parser.parse_args(argv)
    args.n = args.n or (2000 if args.quick else 100_000)
    args.samples = args.samples or (3 if args.quick else 9)
    args.out = args.out or (Path("bench-quick") if args.quick else BENCH_DIR)
    compile_sources()
    results = run(args)
    write(results, args.out)
    print(RESULT_PREFIX + json.dumps(results.get("summary", {})), flush=True)


if __name__ == "__main__":
    main()
