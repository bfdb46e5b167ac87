"""The report over a large history on SQLite and PostgreSQL: seconds per report.

    .venv/bin/python -m bench.bench_report [--messages 100000] [--backend both] [--repeats 3]

One campaign of N messages (80% email, 20% SMS, 5% of them suppressed or deferred, two variants,
four tones, three locales) to N customers, about 3N delivery events (processed, delivered,
opens by people and by privacy proxies, clicks, bounces, drops, spam reports, unsubscribes; SMS
sent and delivered) and N/100 SMS replies, all written with bulk inserts. Then the campaign's
report and the overview of the last 30 days (which adds the sender-health flags) are each built
``--repeats`` times; the table gives the first (cold) and the median time. ``bench.run`` runs this
as its section 6.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.databases import backends, database, postgres_available, print_report
from bench.synth import seed_customers
from orchestrator.db import get_engine, session_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Campaign, CustomerFeedback, DeliveryEvent, table_of, utcnow
from orchestrator.reports import ReportSlice, build_report

CHUNK = 10_000
TONES = ("appreciative", "professional", "empathetic", "urgent")
LOCALES = ("en", "es", "de")
_event = table_of(DeliveryEvent)
_feedback = table_of(CustomerFeedback)


def _message_row(i: int, customer_id: int, campaign_id: int, start: Any) -> dict[str, Any]:
    channel = "sms" if i % 5 == 4 else "email"
    sent_at = start + timedelta(seconds=i % 3600)
    row = {"dedupe_key": "campaign:bench-report", "customer_id": customer_id, "topic": "marketing",
           "channel": channel, "tone": TONES[i % 4], "template": "spring_sale", "locale": LOCALES[i % 3],
           "variant": "a" if i % 2 else "b", "priority": 10, "status": "delivered", "send_at": sent_at,
           "sent_at": sent_at, "delivered_at": sent_at + timedelta(seconds=1 + i % 50), "reason_codes": [],
           "reason_text": "", "data": {}, "campaign_id": campaign_id, "attempts": 1,
           "created_at": start, "updated_at": start}
    if i % 100 < 3:
        row.update(status="suppressed", sent_at=None, delivered_at=None, reason_codes=["cap:marketing-2d"])
    elif i % 100 < 5:
        row.update(status="deferred", sent_at=None, delivered_at=None,
                   reason_codes=["quiet_hours:sms" if channel == "sms" else "send_time:10:00"])
    elif channel == "email" and i % 50 == 7:
        row.update(status="bounced", delivered_at=None)
    elif channel == "email" and i % 200 == 9:
        row.update(status="failed", delivered_at=None)
    return row


def _events(i: int, message_id: int, row: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(provider word, kind) of each event message ``i`` received."""
    if row["sent_at"] is None:
        return
    if row["channel"] == "sms":
        yield "sent", "sent"
        yield "delivered", "delivered"
        return
    yield "processed", "sent"
    if row["status"] == "bounced":
        yield "bounce", "bounce"
        return
    if row["status"] == "failed":
        yield "dropped", "dropped"
        return
    yield "delivered", "delivered"
    if i % 5 < 3:
        yield "open", "open"
    if i % 4 == 0:
        yield "open", "open"
    if i % 10 == 1:
        yield "open", "open"
    if i % 5 == 3:
        yield "open", "machine_open"
    if i % 10 == 0:
        yield "click", "click"
    if i % 1000 == 3:
        yield "spamreport", "spam_report"
    if i % 300 == 5:
        yield "unsubscribe", "unsubscribe"


def seed_history(url: str, n: int) -> dict[str, Any]:
    """N customers and the campaign's N messages, their events and replies; returns the counts."""
    seed_customers(url, n)
    start = utcnow() - timedelta(days=2)
    engine = get_engine(url)
    events = replies = 0
    with engine.begin() as conn:
        campaign_id = conn.execute(insert(table_of(Campaign)).returning(table_of(Campaign).c.id), [
            {"name": "bench-report", "segment": "all", "topic": "marketing", "template": "spring_sale",
             "send_time": "now", "status": "done", "created_at": start, "updated_at": start,
             "variants": [{"tone": "appreciative"}, {"tone": "professional"}]}]).scalar_one()
        customer_ids = [r[0] for r in conn.execute(text("SELECT id FROM customer ORDER BY id"))][:n]
        for first in range(0, n, CHUNK):
            rows = [_message_row(i, customer_ids[i], campaign_id, start)
                    for i in range(first, min(n, first + CHUNK))]
            ids = conn.execute(insert(MESSAGE).returning(MESSAGE.c.id), rows).scalars().all()
            event_rows, feedback_rows = [], []
            for i, (message_id, row) in enumerate(zip(ids, rows, strict=True), start=first):
                for k, (word, kind) in enumerate(_events(i, message_id, row)):
                    event_rows.append({"message_id": message_id, "provider": "bench", "kind": kind,
                                       "provider_event_id": f"{message_id}-{k}", "event_type": word,
                                       "payload": {}, "occurred_at": row["sent_at"], "received_at": start})
                if row["channel"] == "sms" and row["sent_at"] is not None and i % 20 == 4:
                    feedback_rows.append({"customer_id": row["customer_id"], "channel": "sms",
                                          "body": "thanks", "source": "sms_reply",
                                          "created_at": row["sent_at"] + timedelta(hours=1)})
            conn.execute(insert(_event), event_rows)
            if feedback_rows:
                conn.execute(insert(_feedback), feedback_rows)
            events += len(event_rows)
            replies += len(feedback_rows)
    # A database in use has its statistics and visibility map up to date (autovacuum): so does this one.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE" if engine.dialect.name == "sqlite" else "VACUUM ANALYZE"))
    return {"messages": n, "events": events, "replies": replies}


def _server_cpu(session: Any) -> float:
    """CPU seconds used so far by this session's PostgreSQL backend (a local server), else 0."""
    if session.get_bind().dialect.name != "postgresql":
        return 0.0
    pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def time_reports(url: str, repeats: int) -> dict[str, Any]:
    """Seconds to build the campaign report and the 30-day overview, ``repeats`` times each: wall
    time, and CPU time: this process's plus, on a local PostgreSQL, its backend's (parallel
    query workers excluded), so the figure does not depend on what else the machine runs."""
    result: dict[str, Any] = {}
    parts = {"campaign": ReportSlice(campaign="bench-report"),
             "overview": ReportSlice(since=utcnow() - timedelta(days=30))}
    for name, part in parts.items():
        times, cpu = [], []
        for _ in range(repeats):
            with session_scope(url) as session:
                server_before = _server_cpu(session)
                started, cpu_started = time.perf_counter(), time.process_time()
                report = build_report(session, part)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started + _server_cpu(session) - server_before)
        result[f"{name}_first_s"] = times[0]
        result[f"{name}_median_s"] = statistics.median(times)
        result[f"{name}_cpu_s"] = statistics.median(cpu)
        result[f"{name}_messages"] = report["funnel"]["messages"]
    result["opened"] = report["funnel"]["opened"]
    return result


def measure(backend: str, n: int, repeats: int, tmp: Path) -> dict[str, Any]:
    with database(backend, tmp) as url:
        started = time.perf_counter()
        seeded = seed_history(url, n)
        seed_s = time.perf_counter() - started
        return {"backend": backend, **seeded, "seed_s": seed_s, **time_reports(url, repeats)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args(argv)
    chosen = backends(args.backend)
    if "postgres" in chosen and not postgres_available():
        chosen = [b for b in chosen if b != "postgres"]
        print("PostgreSQL is not reachable: SQLite only")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        for backend in chosen:
            print_report(backend, measure(backend, args.messages, args.repeats, Path(tmp)))


if __name__ == "__main__":
    main()
