"""Decide + reserve for a large audience on SQLite and PostgreSQL: customers per second, memory.

    .venv/bin/python -m bench.bench_policy [--customers 100000] [--chunk 1000] [--backend both]

Everything is measured in one run: the throughput of the first and second half of the audience
and the resident memory at 10% and 100% of it, so the ratios show whether cost stays flat; the
pure decision rate (no database) and the process's CPU per customer put the wall-clock figure,
which depends on what else runs on the machine, in proportion.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import tempfile
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select

from bench.databases import backends, database, postgres_available, print_report
from orchestrator.db import get_engine
from orchestrator.models import ConsentEvent, ContactPreference, Customer, Message, Suppression, table_of
from orchestrator.policy import CustomerFacts, Intent, decide_for_customer, load_policy, reserve_chunk
from orchestrator.policy.timing import zone_for
from orchestrator.settings import REPO_ROOT

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kathmandu", "Pacific/Chatham", "Asia/Tokyo"]
NOW = datetime(2026, 5, 6, 15, 0, tzinfo=UTC)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def seed(url: str, n: int) -> None:
    """n customers; 5% with preferences, 5% opted out of marketing email, 1% bounced addresses."""
    rng = random.Random(7)
    engine = get_engine(url)
    with engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(insert(table_of(Customer)), [
                {"external_id": f"b{i}", "name": "", "email": f"b{i}@example.com", "phone": f"+1555{i:07d}",
                 "timezone": rng.choice(ZONES), "locale": "en", "attributes": {}, "created_at": NOW,
                 "tier": "premium" if i % 50 == 0 else "standard", "updated_at": NOW}
                for i in range(start, min(n, start + 10_000))
            ])
        ids = [r[0] for r in conn.execute(select(Customer.id).order_by(Customer.id))]
        conn.execute(insert(table_of(ContactPreference)), [
            {"customer_id": cid, "preferred_channels": ["sms"], "frequency": "weekly", "quiet_start": "22:00",
             "quiet_end": "07:00", "do_not_contact": cid % 97 == 0, "updated_at": NOW}
            for cid in ids[::20]
        ])
        conn.execute(insert(table_of(ConsentEvent)), [
            {"customer_id": cid, "channel": "email", "topic": "marketing", "state": "opted_out",
             "source": "bench", "created_at": NOW}
            for cid in ids[3::20]
        ])
        conn.execute(insert(table_of(Suppression)), [
            {"channel": "email", "address": f"b{i}@example.com", "reason": "bounce", "source": "bench",
             "created_at": NOW}
            for i in range(5, n, 100)
        ])


def audience(url: str, chunk: int):
    """Streams customer ids in keyset-paginated chunks: the audience is never held in memory."""
    engine = get_engine(url)
    last = 0
    while True:
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(
                select(Customer.id).where(Customer.id > last).order_by(Customer.id).limit(chunk))]
        if not ids:
            return
        last = ids[-1]
        yield ids


def run(url: str, n: int, chunk: int, workers: int) -> dict:
    """Reserves the audience chunk by chunk, ``workers`` chunks in flight (as a flow's task runner would)."""
    policy = load_policy(REPO_ROOT / "policy.yaml")
    done, counts = 0, Counter()
    marks: dict[str, float] = {}

    def reserve(ids: list[int]) -> tuple[int, dict[str, int]]:
        intents = [Intent(customer_id=c, topic="marketing", template="spring_sale", dedupe_key="bench-spring",
                          send_time="10:00") for c in ids]
        return len(ids), reserve_chunk(intents, now=NOW, policy=policy, url=url).counts

    def collect(future) -> None:
        nonlocal done
        size, result = future.result()
        counts.update(result)
        done += size
        if "rss_10" not in marks and done >= n // 10:
            marks["rss_10"] = rss_mb()
        if "half" not in marks and done >= n // 2:
            marks["half"], marks["half_at"] = done, time.perf_counter()

    started, cpu_started = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for ids in audience(url, chunk):
            pending.append(pool.submit(reserve, ids))
            while len(pending) >= workers:  # bounded: the audience streams, it is never all in memory
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    ended, cpu = time.perf_counter(), time.process_time() - cpu_started
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(func.count()).select_from(Message)).scalar()
    first = marks["half"] / (marks["half_at"] - started)
    second = (done - marks["half"]) / (ended - marks["half_at"])
    return {
        "workers": workers,
        "customers": done,
        "ledger_rows": rows,
        "outcomes": dict(counts),
        "customers_per_second": done / (ended - started),
        # This process's CPU only (SQLite runs in-process; a PostgreSQL server's CPU is not in it):
        # on a shared machine it shows what the code costs, whatever else competes for the cores.
        "customers_per_cpu_second": done / cpu,
        "second_half_vs_first_half_speed": second / first,
        "rss_mb_at_10pct": marks["rss_10"],
        "rss_mb_at_100pct": rss_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def decide_only(n: int) -> float:
    """Customers per second for the pure decision alone (facts in memory): the database's share shows
    as the ratio to the full decide + reserve figure."""
    policy = load_policy(REPO_ROOT / "policy.yaml")
    zones = [zone_for(z) for z in ZONES]
    addresses = {"email": "a@example.com", "sms": "+15550000000", "phone": "+15550000000", "social": None}
    facts = [CustomerFacts(id=i, zone=zones[i % len(zones)], addresses=dict(addresses)) for i in range(n)]
    intents = [Intent(customer_id=i, topic="marketing", template="spring_sale", dedupe_key="bench",
                      send_time="10:00") for i in range(n)]
    started = time.perf_counter()
    for intent, f in zip(intents, facts, strict=True):
        decide_for_customer([intent], f, NOW, policy)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=0, help="chunks in flight (default: 1 SQLite, 2 PG)")
    args = parser.parse_args()
    print(f"decide only (no database): customers_per_second={decide_only(min(args.customers, 50_000)):.0f}")
    for backend in backends(args.backend):
        if backend == "postgres" and not postgres_available():
            print("postgres: skipped (not reachable)")
            continue
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            seed(url, args.customers)
            workers = args.workers or (1 if backend == "sqlite" else 2)
            report = run(url, args.customers, args.chunk, workers)
        print_report(backend, report)

if __name__ == "__main__":
    main()
