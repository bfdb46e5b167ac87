"""Dispatch throughput: claim, render, hand to an adapter and record, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_dispatch [--messages 20000] [--backend sqlite|postgres|both]

The adapter accepts everything without I/O, so the figures are the engine's own cost (database
round trips and rendering with the shipped templates). In the same run a one-message-at-a-time
dispatch (claim 1, send 1, record 1) of a sample is measured, and the ratio shows what working
in bulk buys.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import yaml
from sqlalchemy import insert, select

from bench.databases import backends, database, postgres_available, print_report
from channels.base import Limits, OutboundMessage, ResultStatus, SendResult
from orchestrator.db import get_engine
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Customer, table_of, utcnow
from orchestrator.settings import REPO_ROOT

SAMPLE = yaml.safe_load((REPO_ROOT / "templates" / "sample_data.yaml").read_text())
FACTS = SAMPLE["messages"]["outage_notice"]


class NullAdapter:
    """Accepts every message at once: the provider's cost is left out on purpose."""

    name: ClassVar[str] = "null"
    channel: ClassVar[str] = "email"
    provider: ClassVar[str] = "null"

    def __init__(self, max_batch: int) -> None:
        self.limits = Limits(max_batch=max_batch)

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        return [SendResult(m.message_id, ResultStatus.accepted, "null", f"null-{m.message_id}")
                for m in batch]

    def close(self) -> None:
        pass


def seed(url: str, n: int) -> None:
    now = utcnow()
    with get_engine(url).begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(insert(table_of(Customer)), [
                {"external_id": f"b{i}", "name": f"Ada Lovelace {i}", "email": f"b{i}@example.com",
                 "timezone": "UTC", "locale": "en", "tier": "standard", "attributes": {},
                 "created_at": now, "updated_at": now}
                for i in range(start, min(n, start + 10_000))
            ])
        ids = [r[0] for r in conn.execute(select(Customer.id).order_by(Customer.id))]
        for start in range(0, n, 10_000):
            conn.execute(insert(MESSAGE), [
                {"dedupe_key": "bench-incident", "customer_id": cid, "topic": "outage", "channel": "email",
                 "tone": "empathetic", "template": "outage_notice", "status": "planned", "send_at": now,
                 "reason_codes": [], "reason_text": "", "data": FACTS, "priority": 0, "attempts": 0,
                 "created_at": now, "updated_at": now}
                for cid in ids[start : start + 10_000]
            ])


def timed(**kwargs) -> tuple[int, float]:
    started = time.perf_counter()
    report = dispatch_due(**kwargs)
    return report.total("sent"), time.perf_counter() - started


def run(url: str, n: int) -> dict[str, float | int]:
    sample = max(100, min(2000, n // 10))
    one_sent, one_secs = timed(limit=sample, claim_size=1, adapters={"email": NullAdapter(1)}, url=url)
    bulk_sent, bulk_secs = timed(limit=n, claim_size=1000, adapters={"email": NullAdapter(500)}, url=url)
    bulk_rate, one_rate = bulk_sent / bulk_secs, one_sent / one_secs
    return {"bulk_sent": bulk_sent, "bulk_messages_per_second": bulk_rate,
            "one_by_one_sent": one_sent, "one_by_one_messages_per_second": one_rate,
            "bulk_vs_one_by_one": bulk_rate / one_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    for backend in backends(args.backend):
        if backend == "postgres" and not postgres_available():
            print("postgres: skipped (not reachable)")
            continue
        with tempfile.TemporaryDirectory() as tmp, database(backend, Path(tmp)) as url:
            seed(url, args.messages + max(100, min(2000, args.messages // 10)))
            report = run(url, args.messages)
        print_report(backend, report)

if __name__ == "__main__":
    main()
