"""Decide + reserve for a large audience on SQLite and PostgreSQL: customers per second, memory.

    .venv/bin/python -m bench.bench_policy [--customers 100000] [--chunk 1000] [--backend sqlite|postgres|both]

Everything is measured in one run: the throughput of the first and second half of the audience
and the resident memory at 10% and 100% of it, so the ratios show whether cost stays flat.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from orchestrator.db import get_engine, upgrade
from orchestrator.models import ConsentEvent, ContactPreference, Customer, Message, Suppression
from orchestrator.policy import Intent, load_policy, reserve_chunk
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
            conn.execute(insert(Customer.__table__), [  # type: ignore[attr-defined]
                {"external_id": f"b{i}", "name": "", "email": f"b{i}@example.com", "phone": f"+1555{i:07d}",
                 "timezone": rng.choice(ZONES), "locale": "en", "tier": "premium" if i % 50 == 0 else "standard",
                 "attributes": {}, "created_at": NOW, "updated_at": NOW}
                for i in range(start, min(n, start + 10_000))
            ])
        ids = [r[0] for r in conn.execute(select(Customer.id).order_by(Customer.id))]
        conn.execute(insert(ContactPreference.__table__), [  # type: ignore[attr-defined]
            {"customer_id": cid, "preferred_channels": ["sms"], "frequency": "weekly", "quiet_start": "22:00",
             "quiet_end": "07:00", "do_not_contact": cid % 97 == 0, "updated_at": NOW}
            for cid in ids[::20]
        ])
        conn.execute(insert(ConsentEvent.__table__), [  # type: ignore[attr-defined]
            {"customer_id": cid, "channel": "email", "topic": "marketing", "state": "opted_out",
             "source": "bench", "created_at": NOW}
            for cid in ids[3::20]
        ])
        conn.execute(insert(Suppression.__table__), [  # type: ignore[attr-defined]
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


def run(url: str, n: int, chunk: int) -> dict:
    policy = load_policy(REPO_ROOT / "policy.yaml")
    done, counts = 0, {}
    marks: dict[str, float] = {}
    started = half_at = time.perf_counter()
    for ids in audience(url, chunk):
        intents = [Intent(customer_id=c, topic="marketing", template="spring_sale", dedupe_key="bench-spring",
                          send_time="10:00", campaign_id=None) for c in ids]
        result = reserve_chunk(intents, now=NOW, policy=policy, url=url)
        for status, k in result.counts.items():
            counts[status] = counts.get(status, 0) + k
        done += len(ids)
        if "rss_10" not in marks and done >= n // 10:
            marks["rss_10"] = rss_mb()
        if "half" not in marks and done >= n // 2:
            marks["half"] = done
            half_at = time.perf_counter()
    ended = time.perf_counter()
    with get_engine(url).connect() as conn:
        rows = conn.execute(select(Message.id)).all()
    first = marks["half"] / (half_at - started)
    second = (done - marks["half"]) / (ended - half_at)
    return {
        "customers": done,
        "ledger_rows": len(rows),
        "outcomes": counts,
        "customers_per_second": done / (ended - started),
        "second_half_vs_first_half_speed": second / first,
        "rss_mb_at_10pct": marks["rss_10"],
        "rss_mb_at_100pct": rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                url, cleanup = f"sqlite:///{Path(tmp) / 'bench.db'}", None
            else:
                from tests.support import postgres

                server, reason = postgres.ensure_server()
                if server is None:
                    print(f"postgres: skipped ({reason})")
                    continue
                url = postgres.create_database(server)
                cleanup = (server, url)
            try:
                upgrade(url)
                seed(url, args.customers)
                report = run(url, args.customers, args.chunk)
            finally:
                get_engine(url).dispose()
                if cleanup:
                    postgres.drop_database(*cleanup)
        print(f"{backend}: " + ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in report.items()))


if __name__ == "__main__":
    main()
