"""Four processes run two campaigns and an outage notice for the same 10,000 customers on PostgreSQL.

Counted from what the fake providers received (by recipient address), not only from the ledger:
no (message, recipient) reaches a provider twice, and no customer gets more marketing than the
caps allow (``marketing-2d``: 1 in two days across channels, ``sms-1d``: 1 text a day), counting
the marketing message half of them already had yesterday.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from orchestrator.db import get_engine, session_scope
from orchestrator.models import Customer, Message, MessageStatus, utcnow
from tests.reliability import workers
from tests.support.flow_world import MARKETING_FACTS
from tests.support.zones import DAYTIME, local_zone

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CUSTOMERS = 10_000
PROCESSES = 4
CHUNK = 500
SMS_EVERY = 5  # one customer in five has a phone only
OUTAGE = workers.OUTAGE_FACTS
PLAN: workers.Plan = [
    ("marketing", "spring_sale", "campaign:spring", MARKETING_FACTS),
    ("marketing", "spring_sale", "campaign:spring-reminder", MARKETING_FACTS),
    ("outage", "outage_notice", "incident:inc-7:investigating", OUTAGE),
]


def _populate(url: str) -> tuple[list[int], set[int]]:
    """Bulk-inserts the customers (daytime everywhere) and yesterday's marketing for every other one."""
    now, zone = utcnow(), local_zone(DAYTIME)
    rows = [
        {"external_id": f"r{i}", "name": f"Ada Number{i}", "timezone": zone, "locale": "en",
         "tier": "standard", "attributes": {}, "created_at": now, "updated_at": now,
         "email": None if i % SMS_EVERY == 0 else f"ada{i}@example.com",
         "phone": f"+1415{i:07d}" if i % SMS_EVERY == 0 else None}
        for i in range(CUSTOMERS)
    ]
    with session_scope(url) as s:
        s.execute(insert(Customer.__table__), rows)
        ids = list(s.execute(select(Customer.id).order_by(Customer.id)).scalars())
        phone_only = set(ids[::SMS_EVERY])
        yesterday = now - timedelta(hours=20)
        history = [
            {"dedupe_key": "campaign:winter", "customer_id": cid, "topic": "marketing",
             "channel": "sms" if cid in phone_only else "email", "template": "spring_sale",
             "status": MessageStatus.sent.value, "send_at": yesterday, "sent_at": yesterday,
             "reason_codes": [], "data": {}, "created_at": yesterday, "updated_at": yesterday,
             "priority": 10, "attempts": 1, "reason_text": ""}
            for cid in ids[1::2]
        ]
        s.execute(insert(Message.__table__), history)
    get_engine(url).dispose()  # no pooled connection crosses into the workers
    return ids, {r["customer_id"] for r in history}


def _run_workers(env: dict[str, str], ids: list[int]) -> list[int | None]:
    ctx = workers.context()
    barrier = ctx.Barrier(PROCESSES)
    procs = [ctx.Process(target=workers.reserve_and_dispatch, args=(env, ids, PLAN, CHUNK, n, barrier))
             for n in range(PROCESSES)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 240
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:  # one that did not finish must not go on writing into the next test's database
        if p.is_alive():
            p.kill()
            p.join()
    return codes


def test_parallel_campaigns_and_outage_notice_never_break_a_cap_or_send_twice(
        pg_url, fake_sendgrid, fake_twilio, figure):
    ids, had_marketing = _populate(pg_url)
    env = workers.provider_env(pg_url, fake_sendgrid, fake_twilio, ORCH_PROVIDER_CONCURRENCY="4",
                               ORCH_PROVIDER_TIMEOUT_SECONDS="10")

    assert _run_workers(env, ids) == [0] * PROCESSES

    with session_scope(pg_url) as s:
        ledger = {m.id: m for m in s.exec(select(Message)).scalars()}  # type: ignore[call-overload]
        addresses = {c.id: c.email or c.phone for c in s.exec(select(Customer)).scalars()}  # type: ignore[call-overload]
    customer_of = {addr: cid for cid, addr in addresses.items()}
    requests = [r for fake in (fake_sendgrid, fake_twilio) for r in fake.requests]
    accepted = [r for r in requests if r.status is not None and 200 <= r.status < 300]

    # Duplicates: a (message, recipient) the providers accepted more than once, and a dedupe key
    # that reached one recipient through two different ledger rows.
    per_message = Counter((r.message_id, r.address) for r in accepted)
    per_key = Counter((ledger[int(r.message_id)].dedupe_key, r.address) for r in accepted)  # type: ignore[arg-type]
    duplicates = sum(n - 1 for counts in (per_message, per_key) for n in counts.values() if n > 1)

    # Caps, from the recipients' side: marketing received per customer, plus yesterday's.
    marketing = Counter(customer_of[r.address] for r in accepted  # type: ignore[index]
                        if ledger[int(r.message_id)].topic == "marketing")  # type: ignore[arg-type]
    violations = sorted(cid for cid in ids if marketing[cid] + (cid in had_marketing) > 1)

    outage_reached = {customer_of[r.address] for r in accepted  # type: ignore[index]
                      if ledger[int(r.message_id)].topic == "outage"}  # type: ignore[arg-type]
    states = Counter(m.status for m in ledger.values() if m.dedupe_key != "campaign:winter")
    figure("concurrency", f"{CUSTOMERS} customers, {PROCESSES} processes on PostgreSQL (reserve_chunk + "
           f"dispatch_due, 2 campaigns + 1 outage notice), {len(violations)} cap violations, "
           f"{duplicates} duplicate sends (the fakes recorded {len(requests)} recipients, one per message "
           f"of a merged request, and accepted {len(accepted)})")

    assert duplicates == 0
    assert violations == []
    assert len(requests) == len(accepted)  # no fault was injected: every request was a real send
    assert outage_reached == set(ids)  # the outage notice bypasses the caps and reaches everyone once
    fresh_email = [cid for cid in ids if cid not in had_marketing and "@" in addresses[cid]]
    assert all(marketing[cid] == 1 for cid in fresh_email)  # caps hold without starving anyone
    assert set(states) <= {MessageStatus.sent, MessageStatus.suppressed}, states
    _explained(ledger.values())


def _explained(rows: Any) -> None:
    """Every message that did not go out says why in its reason codes."""
    for m in rows:
        if m.status == MessageStatus.suppressed:
            assert any(code.startswith(("cap:", "consent", "suppress")) for code in m.reason_codes), m
