"""An outage's SMS lane at a realistic rate, and its email lane beside it: ``python -m bench.lanes``.

An outage notice goes to a synthetic audience of which every ``--every``-th customer has no email
address (nor an X account): the outage topic's next channel, SMS, reaches them. A policy written
for the bench (the repo's ``policy.yaml`` plus ``rates: {sms: 10/s, email: 200 requests/s}``; the
outage topic bypasses quiet hours so the figures do not depend on the hour of the run) is in force,
and the fake Twilio and SendGrid, in a process of their own with 5 ms latency, answer 429 above those
rates (each lets one more request through in any second, as the declared burst does). The notice
runs as the outage flow against a Prefect server of the bench's own. Measured at the fakes:

- SMS requests in every one-second window that starts at an accepted request: the most, and how
  many windows held more than the rate (beyond the burst);
- the email lane: its first and last request after the flow started, against the same notice to
  the same email customers with no SMS customers in the audience (a ratio near 1: the SMS lane's
  pacing does not hold email back);
- the 429s the fakes answered;
- the ledger (read every 0.2 s while the flow runs): SMS messages that waited ``deferred`` with
  ``pace:sms``, the time each was expected to go, and when it reached the fake.

Results go to ``<out>/lanes.json`` and a section of ``<out>/RESULTS.md`` (kept among its notes).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, func, select, update

from bench.databases import backends, database
from bench.fakes_process import FakesProcess
from bench.measure import RESULT_PREFIX
from bench.run import BENCH_DIR, Children, log, prefect_server, write_notes_section
from bench.synth import seed_customers
from orchestrator.db import get_engine
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import ConsentEvent, Customer, table_of
from orchestrator.settings import REPO_ROOT

SMS_RATE = 10.0
RATES = {"sms": f"{SMS_RATE:g}/s", "email": "200 requests/s"}
FAKE_RATES = {"twilio": SMS_RATE, "sendgrid": 200.0}
SMS_BURST = 1  # the declared burst of 10/s (a tenth of a second's worth, at least 1) and the fakes' too
SECTION = ("<!-- lanes -->", "<!-- /lanes -->")
CUSTOMER, CONSENT = table_of(Customer), table_of(ConsentEvent)


def bench_policy(tmp: Path) -> Path:
    data = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    data["rates"] = dict(RATES)
    data["topics"]["outage"]["bypass_quiet_hours"] = True
    path = tmp / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def seed(url: str, *, email: int, sms: int, every: int, with_sms: bool) -> list[int]:
    """``email + sms`` synthetic customers, every ``every``-th of them (``sms`` in all) without email
    and X account: reached by SMS if ``with_sms``, else removed (the same email customers either way).
    Returns the SMS customers' ids."""
    seed_customers(url, email + sms)
    chosen = [i for i in range(every, every * sms + 1, every)]
    if len(chosen) != sms or chosen[-1] > email + sms:
        raise ValueError("--every is too large for these numbers")
    with get_engine(url).begin() as conn:
        if with_sms:
            conn.execute(update(CUSTOMER).where(CUSTOMER.c.id.in_(chosen)).values(email=None, x_user_id=None))
        else:
            conn.execute(delete(CONSENT).where(CONSENT.c.customer_id.in_(chosen)))
            conn.execute(delete(CUSTOMER).where(CUSTOMER.c.id.in_(chosen)))
    return chosen


class PaceWatcher(threading.Thread):
    """Reads the ledger while the notice runs: the first time each SMS message was seen waiting with
    ``pace:sms``, and the time it was then expected to go (epoch seconds)."""

    def __init__(self, url: str, every: float = 0.2) -> None:
        super().__init__(name="pace-watcher", daemon=True)
        self.url, self.every = url, every
        self.expected: dict[int, float] = {}
        self.reasons: dict[str, int] = {}
        self._finished = threading.Event()

    def run(self) -> None:
        engine = get_engine(self.url)
        query = select(MESSAGE.c.id, MESSAGE.c.send_at, MESSAGE.c.reason_codes).where(
            MESSAGE.c.channel == "sms", MESSAGE.c.status == "deferred")
        while not self._finished.is_set():
            with engine.connect() as conn:
                for row in conn.execute(query):
                    paced = [c for c in row.reason_codes or [] if c.startswith("pace:")]
                    if paced and row.id not in self.expected:
                        self.expected[row.id] = row.send_at.replace(tzinfo=UTC).timestamp()
                        self.reasons[paced[-1]] = self.reasons.get(paced[-1], 0) + 1
            self._finished.wait(self.every)

    def stop(self) -> None:
        self._finished.set()
        self.join(timeout=10)


def window_counts(times: list[float]) -> list[int]:
    """Requests in every one-second window that starts at a request."""
    times, counts, end = sorted(times), [], 0
    for i, start in enumerate(times):
        while end < len(times) and times[end] < start + 1.0:
            end += 1
        counts.append(end - i)
    return counts


def one_run(children: Children, fakes: FakesProcess, args: argparse.Namespace, tmp: Path, *,
            backend: str, with_sms: bool, label: str) -> dict[str, Any]:
    with database(backend, tmp) as url:
        sms_ids = seed(url, email=args.email, sms=args.sms, every=args.every, with_sms=with_sms)
        fakes.reset()
        fakes.enforce_rates(FAKE_RATES)
        watcher = PaceWatcher(url)
        watcher.start()
        since = time.time()
        try:
            outcome = children.measure("outage", url, label, n=args.email + args.sms, segment="all",
                                       chunk_size=args.chunk_size)
        finally:
            watcher.stop()
        time.sleep(0.5)
        seen = fakes.arrivals(since)
        with get_engine(url).connect() as conn:
            statuses = {(r.channel, r.status): r.n for r in conn.execute(
                select(MESSAGE.c.channel, MESSAGE.c.status, func.count().label("n"))
                .group_by(MESSAGE.c.channel, MESSAGE.c.status))}
    start = outcome["started_at"]
    email, sms = seen["sendgrid"], seen["twilio"]
    result: dict[str, Any] = {
        "backend": backend,
        "with_sms": with_sms,
        "wall_s": outcome["wall_s"],
        "ledger": {f"{c}:{s}": n for (c, s), n in sorted(statuses.items())},
        "email": {"messages": len(email["messages"]), "requests": len(email["requests"]),
                  "first_s": email["requests"][0] - start if email["requests"] else None,
                  "last_s": email["requests"][-1] - start if email["requests"] else None,
                  "rate_limited": email["rate_limited"]},
    }
    if with_sms:
        counts = window_counts(sms["requests"])
        arrived = {int(k): v for k, v in sms["messages"].items()}
        lateness = sorted(arrived[m] - at for m, at in watcher.expected.items() if m in arrived)
        first, last = (sms["requests"][0], sms["requests"][-1]) if sms["requests"] else (start, start)
        result["sms"] = {
            "customers": len(sms_ids),
            "messages": len(arrived),
            "requests": len(sms["requests"]),
            "first_s": first - start,
            "last_s": last - start,
            "sustained_per_s": (len(sms["requests"]) - 1) / (last - first) if last > first else None,
            "max_per_window": max(counts, default=0),
            "windows": len(counts),
            "windows_over_rate": sum(1 for c in counts if c > SMS_RATE),
            "windows_over_burst": sum(1 for c in counts if c > SMS_RATE + SMS_BURST),
            "rate_limited": sms["rate_limited"],
            "paced": len(watcher.expected),
            "paced_reasons": watcher.reasons,
            "late_median_s": statistics.median(lateness) if lateness else None,
            "late_min_s": lateness[0] if lateness else None,
            "late_max_s": lateness[-1] if lateness else None,
            "arrivals_s": [round(t - start, 3) for t in sms["requests"]],
            "expected_s": sorted(round(t - start, 3) for t in watcher.expected.values()),
        }
    log(f"  {label}: {json.dumps({k: v for k, v in result.items() if k != 'sms'})} "
        f"{json.dumps({k: v for k, v in result.get('sms', {}).items() if k != 'arrivals_s'})}")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-lanes-"))
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                               "load": [os.getloadavg()[0]], "backend": args.backend, "email": args.email,
                               "sms": args.sms, "every": args.every, "rates": RATES, "runs": []}
    with FakesProcess(latency=args.latency_ms / 1000) as fakes, prefect_server(tmp / "prefect") as (api, pid):
        assert fakes.endpoints is not None
        env = {**fakes.endpoints.env(), "PREFECT_API_URL": api, "ORCH_POLICY_FILE": str(bench_policy(tmp)),
               "ORCH_OUTBOX_DIR": str(tmp / "outbox")}
        children = Children(env, tmp, server_pid=pid)
        # The first flow run on a fresh Prefect server pays for registering the flow (about 2 s more
        # here): a warm-up run that is not counted.
        for backend in backends(args.backend):
            one_run(children, fakes, args, tmp, backend=backend, with_sms=False, label=f"warm-up-{backend}")
            for i in range(args.repeat):
                for with_sms in (False, True):
                    label = f"{backend}-{'mixed' if with_sms else 'email-only'}-{i + 1}"
                    results["runs"].append(one_run(children, fakes, args, tmp, backend=backend,
                                                   with_sms=with_sms, label=label))
    results["load"].append(os.getloadavg()[0])
    results["summary"] = {backend: summarise([r for r in results["runs"] if r["backend"] == backend])
                          for backend in backends(args.backend)}
    return results


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    alone = [r["email"]["last_s"] for r in runs if not r["with_sms"] and r["email"]["last_s"] is not None]
    mixed = [r for r in runs if r["with_sms"]]
    beside = [r["email"]["last_s"] for r in mixed if r["email"]["last_s"] is not None]
    out: dict[str, Any] = {
        "email_last_alone_s": statistics.median(alone) if alone else None,
        "email_last_beside_sms_s": statistics.median(beside) if beside else None,
    }
    if alone and beside:
        out["email_ratio"] = out["email_last_beside_sms_s"] / out["email_last_alone_s"]
    if mixed:
        out["sms_max_per_window"] = max(r["sms"]["max_per_window"] for r in mixed)
        out["sms_windows_over_burst"] = sum(r["sms"]["windows_over_burst"] for r in mixed)
        out["rate_limited"] = {"twilio": sum(r["sms"]["rate_limited"] for r in mixed),
                               "sendgrid": sum(r["email"]["rate_limited"] for r in runs)}
    return out


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2)  # lists of numbers (arrival times) on one line each
    text = re.sub(r"\[([\d\s.,-]+)\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)).strip() + "]", text)
    (out / "lanes.json").write_text(text + "\n")
    s = results["summary"]
    s_repeat = max(1, len(results["runs"]) // (2 * max(1, len(s))))
    lines = [
        SECTION[0], "",
        "## An outage's SMS lane at 10/s beside its email lane (`python -m bench.lanes`)", "",
        f"{results['started']} UTC, an outage notice to {results['email']:,} customers "
        f"by email and {results['sms']:,} by SMS (every {results['every']}th customer has no email), lane "
        f"rates {results['rates']} declared in the policy and enforced by the fakes (429 above; 5 ms "
        f"latency); load average {results['load'][0]:.2f} at start, {results['load'][-1]:.2f} at end. "
        "Times from the flow's start to the requests received by the fakes; `email only` is the same "
        "notice to the same email customers with no SMS customer in the audience.", "",
        "| database | run | email: first s | email: last s | SMS: first s | SMS: last s | SMS/s sustained | "
        "SMS max in 1 s | 1-s windows over 10 / over 10+burst | 429s (Twilio, SendGrid) | "
        "waited `pace:sms` | arrival - expected s (median, min, max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(results["runs"]):
        e, m = r["email"], r.get("sms")
        kind = "email + SMS" if r["with_sms"] else "email only"
        name = f"{r['backend']} | {kind} ({i // 2 % s_repeat + 1})"
        if m is None:
            lines.append(f"| {name} | {_f(e['first_s'])} | {_f(e['last_s'])} | - | - | - | - | - | "
                         f"-, {e['rate_limited']} | - | - |")
            continue
        lines.append(
            f"| {name} | {_f(e['first_s'])} | {_f(e['last_s'])} | {_f(m['first_s'])} | {_f(m['last_s'])} | "
            f"{_f(m['sustained_per_s'])} | {m['max_per_window']} | {m['windows_over_rate']} / "
            f"{m['windows_over_burst']} of {m['windows']} | {m['rate_limited']}, {e['rate_limited']} | "
            f"{m['paced']} of {m['messages']} | {_f(m['late_median_s'])}, {_f(m['late_min_s'])}, "
            f"{_f(m['late_max_s'])} |")
    for backend, b in s.items():
        if "email_ratio" in b:
            lines += ["", f"{backend}: the email lane's last request {_f(b['email_last_beside_sms_s'])} s "
                          f"beside the SMS lane against {_f(b['email_last_alone_s'])} s alone (median of the "
                          f"runs): **{b['email_ratio']:.2f}x**."]
    lines += ["", SECTION[1]]
    write_notes_section(out, SECTION, lines)


def _f(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small numbers, to check that it works")
    parser.add_argument("--email", type=int, help="customers reached by email (default 3000)")
    parser.add_argument("--sms", type=int, help="customers reached by SMS (default 300: 30 s at 10/s)")
    parser.add_argument("--every", type=int, default=10, help="every N-th customer is an SMS customer")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of runs (email only, email + SMS)")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--backend", default="sqlite", help="sqlite, postgres or both")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--out", type=Path, help="default bench/ (quick: ./bench-quick/)")
    args = parser.parse_args(argv)
    args.email = args.email or (600 if args.quick else 3000)
    args.sms = args.sms or (40 if args.quick else 300)
    args.repeat = 1 if args.quick else args.repeat
    args.out = args.out or (Path("bench-quick") if args.quick else BENCH_DIR)
    results = run(args)
    write(results, args.out)
    print(RESULT_PREFIX + json.dumps(results["summary"]), flush=True)


if __name__ == "__main__":
    main()
