"""Several processes reserve for the same customers at once: caps hold, no dedupe key twice."""

import multiprocessing
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from orchestrator.db import get_engine, session_scope
from orchestrator.models import Customer, Message
from orchestrator.policy import Intent, load_policy, reserve_chunk
from orchestrator.settings import REPO_ROOT

NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
PROCESSES = 4
CUSTOMERS = 40


def _worker(url: str, ids: list[int], plan: list[tuple[str, str]], seed: int, barrier) -> None:
    policy = load_policy(REPO_ROOT / "policy.yaml")
    rng = random.Random(seed)
    order = ids[:]
    rng.shuffle(order)
    barrier.wait()
    for topic, key in plan:
        for start in range(0, len(order), 10):
            chunk = order[start : start + 10]
            intents = [Intent(customer_id=c, topic=topic, template="t", dedupe_key=key) for c in chunk]
            reserve_chunk(intents, now=NOON, policy=policy, url=url)
    get_engine(url).dispose()


def _run(url: str, plans: list[list[tuple[str, str]]]) -> list[int]:
    with session_scope(url) as s:
        customers = [Customer(external_id=f"c{i}", email=f"c{i}@example.com") for i in range(CUSTOMERS)]
        s.add_all(customers)
        s.flush()
        ids = [c.id for c in customers]
    get_engine(url).dispose()  # no pooled connection crosses into the children
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    procs = [ctx.Process(target=_worker, args=(url, ids, plan, n, barrier)) for n, plan in enumerate(plans)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * len(plans)
    return ids


def _ledger(url: str) -> list[Message]:
    with session_scope(url) as s:
        return list(s.exec(select(Message)).scalars())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


def test_parallel_reservations_hold_every_cap_and_never_duplicate(url):
    campaigns = [("marketing", f"campaign-{n}") for n in range(3)]
    # Every process runs the same three campaigns (each in its own order) and two support notices
    # of its own: 8 support notices per customer against a cap of 3 per week.
    plans = [
        campaigns[n:] + campaigns[:n] + [("support", f"ticket-{n}-{k}") for k in range(2)]
        for n in range(PROCESSES)
    ]
    ids = _run(url, plans)
    rows = _ledger(url)
    assert len(rows) == (3 + 2 * PROCESSES) * CUSTOMERS
    keys = Counter((m.dedupe_key, m.customer_id) for m in rows)
    assert max(keys.values()) == 1

    marketing = [m for m in rows if m.topic == "marketing"]
    assert Counter(m.customer_id for m in marketing if m.status == "planned") == {cid: 1 for cid in ids}
    assert all("cap:marketing-2d" in m.reason_codes for m in marketing if m.status == "suppressed")

    # Each process reserves all campaigns before its support notices, so every customer's marketing
    # message is decided first and holds one of the three weekly slots.
    week = timedelta(days=7)
    by_customer: dict[int, list[datetime]] = defaultdict(list)
    for m in rows:
        if m.status in ("planned", "deferred"):
            by_customer[m.customer_id].append(m.send_at)
    assert sorted(by_customer) == sorted(ids)
    for times in by_customer.values():
        assert len(times) == 1 + 2 * PROCESSES  # every support notice is kept, deferred if need be
        assert times.count(NOON) == 3  # exactly what the weekly cap allows now
        for end in times:
            assert sum(1 for t in times if end - week < t <= end) <= 3
