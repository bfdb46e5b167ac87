"""Synthetic customers written straight into the database in bulk: ``python -m bench.synth URL N``.

Every customer has an email and a phone number and one of several time zones; 10% are in the
``us-east`` region (the ``us_east_outage`` segment), 2% are premium. Consent is mostly given:
90% opted in to marketing email, 3% opted out of it, the rest never said. Rows are generated and
inserted a chunk at a time, so memory stays flat whatever N; ids are assigned here (contiguous
after the largest existing id) so consent rows need no read-back.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

from orchestrator.db import get_engine, is_sqlite, upgrade
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import ConsentEvent, Customer, MessageStatus, table_of, utcnow

ZONES = ["UTC", "America/New_York", "America/Los_Angeles", "Europe/Berlin", "Europe/London",
         "Asia/Kathmandu", "Asia/Tokyo", "Australia/Sydney"]
REGIONS = ["us-east", "us-west", "eu-central", "eu-west", "ap-south", "ap-northeast", "sa-east", "us-central",
           "ca-central", "af-south"]  # one in ten is us-east
CHUNK = 10_000
_customer = table_of(Customer)
_consent = table_of(ConsentEvent)


def email_of(i: int) -> str:
    return f"synth{i}@example.com"


def _customers(first_id: int, start: int, stop: int, now: Any) -> Iterator[dict[str, Any]]:
    since = date(2015, 1, 1)
    for i in range(first_id - 1 + start, first_id - 1 + stop):  # i + 1 is the id: unique across batches
        yield {
            "id": i + 1, "external_id": f"synth-{i}", "name": f"Customer {i}", "email": email_of(i),
            "phone": f"+1415{i % 10_000_000:07d}", "x_user_id": str(1_000_000 + i),
            "timezone": ZONES[i % len(ZONES)], "locale": "en",
            "tier": "premium" if i % 50 == 7 else "standard",
            "customer_since": since + timedelta(days=i % 3000),
            "attributes": {"region": REGIONS[i % len(REGIONS)], "plan": "growth"},
            "created_at": now, "updated_at": now,
        }


def _consents(first_id: int, start: int, stop: int, now: Any) -> Iterator[dict[str, Any]]:
    for i in range(first_id - 1 + start, first_id - 1 + stop):
        bucket = i % 100
        if bucket < 90 or bucket >= 97:
            yield {"customer_id": i + 1, "channel": "email", "topic": "marketing",
                   "state": "opted_in" if bucket < 90 else "opted_out", "source": "synth", "created_at": now}


def seed_customers(url: str, n: int) -> dict[str, float]:
    """Adds ``n`` synthetic customers with their consent; returns rows and seconds taken."""
    engine = get_engine(url)
    now = utcnow()
    started = time.perf_counter()
    with engine.begin() as conn:
        first_id = int(conn.execute(select(func.coalesce(func.max(_customer.c.id), 0))).scalar_one()) + 1
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            conn.execute(insert(_customer), list(_customers(first_id, start, stop, now)))
            conn.execute(insert(_consent), list(_consents(first_id, start, stop, now)))
        if not is_sqlite(engine):  # ids were given explicitly: move the sequence past them
            conn.execute(text("SELECT setval(pg_get_serial_sequence('customer', 'id'), "
                              "(SELECT max(id) FROM customer))"))
    return {"customers": n, "seconds": time.perf_counter() - started}


def seed_marketing_history(url: str, every: int, *, hours_ago: float = 20) -> list[str]:
    """A marketing email already sent ``hours_ago`` to every ``every``-th customer: the 2-day marketing
    cap must keep them out of any new campaign. Returns their email addresses (to check at the fake)."""
    engine = get_engine(url)
    sent_at = utcnow() - timedelta(hours=hours_ago)
    emails: list[str] = []
    with engine.begin() as conn:
        last = 0
        while True:
            found = conn.execute(select(_customer.c.id, _customer.c.email).where(_customer.c.id > last)
                                 .order_by(_customer.c.id).limit(CHUNK)).all()
            if not found:
                return emails
            last = found[-1].id
            chosen = [row for row in found if row.id % every == 0]
            if chosen:
                conn.execute(insert(MESSAGE), [
                    {"dedupe_key": "campaign:earlier", "customer_id": row.id, "topic": "marketing",
                     "channel": "email", "tone": "playful", "template": "spring_sale",
                     "status": MessageStatus.sent.value, "send_at": sent_at, "sent_at": sent_at,
                     "reason_codes": [], "reason_text": "", "data": {}, "priority": 10, "attempts": 1,
                     "created_at": sent_at, "updated_at": sent_at}
                    for row in chosen])
                emails += [row.email for row in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="database URL (migrated first)")
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    upgrade(args.url)
    report = seed_customers(args.url, args.n)
    print(f"{args.n:,} customers in {report['seconds']:.1f} s ({args.n / report['seconds']:,.0f}/s)")


if __name__ == "__main__":
    main()
