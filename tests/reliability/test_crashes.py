"""A dispatching process killed with SIGKILL at random moments: after recovery nothing is sent twice or lost.

Each round puts fresh email and SMS messages in the ledger, starts a worker that dispatches them
through the real adapters to the fake providers (with a little latency, so a kill can land
anywhere), kills it after a seeded random delay (every other round counted from the first request a
fake provider received, so kills land in the window between acceptance and the ledger write even
on a busy machine), then recovers in this process the way an operator
would: ``reconcile_stuck`` (the worker is dead, so its ``sending`` rows are stale at once) and a
normal ``dispatch_due``. Per message, from the fakes' own records: sent exactly once, or flagged
``reconcile`` and received at most once; never sent blind a second time, never silently dropped.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import text

from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from orchestrator.db import get_engine, is_sqlite
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.reconcile import reconcile_stuck
from orchestrator.models import MessageStatus, utcnow
from tests.reliability import workers
from tests.support.fakes import FakeSendGrid, FakeTwilio
from tests.support.ledger import add_customers, add_messages, messages

pytestmark = pytest.mark.slow

KILLS = 20  # SIGKILLs that must land while the dispatch is running
MAX_ROUNDS = 60  # a kill that comes after the run finished does not count: try again
PER_CHANNEL = 25  # messages per channel and round
CLAIM = 10  # several claims per round: kills land between them too
LATENCY = 0.01
FACTS = workers.OUTAGE_FACTS


@pytest.fixture
def fakes():
    with FakeSendGrid(latency=LATENCY) as sendgrid, FakeTwilio(latency=LATENCY) as twilio:
        yield sendgrid, twilio


def _wait_for_dead_locks(url: str) -> None:
    """PostgreSQL ends a killed client's transaction when it notices the closed socket."""
    engine = get_engine(url)
    if is_sqlite(engine):
        return  # the next writer rolls the killed transaction back from its journal
    query = text("SELECT count(*) FROM pg_locks l JOIN pg_class c ON l.relation = c.oid "
                 "WHERE c.relname = 'message' AND l.pid <> pg_backend_pid()")
    for _ in range(200):
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() == 0:
                return
        time.sleep(0.05)
    raise AssertionError("a killed worker's locks were never released")


def _wait_for_first_request(worker, fakes, ids: list[int], timeout: float = 30.0) -> None:
    """Returns once a fake has received one of ``ids`` (or the worker has ended)."""
    deadline = time.monotonic() + timeout
    while worker.is_alive() and time.monotonic() < deadline:
        if any(fake.requests_for(mid) for fake in fakes for mid in ids):
            return
        time.sleep(0.002)


def _phase(exitcode: int | None, statuses: Counter[str], accepted_unrecorded: int) -> str:
    if exitcode == 0:
        return "after the run finished"
    if accepted_unrecorded:
        return "provider accepted, ledger not yet written"
    if statuses[MessageStatus.sending]:
        return "claimed, before the provider call"
    if statuses[MessageStatus.planned] == sum(statuses.values()):
        return "before the first claim"
    return "between batches"


def _more_rounds(rounds: int, phases: Counter[str]) -> bool:
    """Until enough kills landed mid-dispatch and one of them in the dangerous window."""
    enough = (rounds - phases["after the run finished"] >= KILLS
              and phases["provider accepted, ledger not yet written"] > 0)
    return not enough and rounds < MAX_ROUNDS


def test_sigkill_at_random_points_never_sends_twice_and_loses_nothing(db_url, fakes, figure):
    sendgrid, twilio = fakes
    env = workers.provider_env(db_url, sendgrid, twilio, ORCH_PROVIDER_CONCURRENCY="2",
                               ORCH_PROVIDER_TIMEOUT_SECONDS="5")
    rng = random.Random(20261124)
    ctx = workers.context()
    adapters = {"email": SendGridEmailAdapter(api_key=sendgrid.api_key, host=sendgrid.url, timeout=5),
                "sms": TwilioSmsAdapter(account_sid=twilio.account_sid, auth_token=twilio.auth_token,
                                        from_number="+15557654321", base_url=twilio.url, timeout=5)}
    phases: Counter[str] = Counter()
    outcome: Counter[str] = Counter()
    try:
        rounds = 0
        while _more_rounds(rounds, phases):
            n = rounds
            rounds += 1
            customers = add_customers(PER_CHANNEL)
            ids = (add_messages(customers, template="outage_notice", topic="outage", data=FACTS,
                                dedupe=f"crash-{n}-email")
                   + add_messages(customers, channel="sms", template="outage_notice", topic="outage",
                                  data=FACTS, dedupe=f"crash-{n}-sms"))
            get_engine(db_url).dispose()
            ready = ctx.Event()
            worker = ctx.Process(target=workers.dispatch_until_killed, args=(env, CLAIM, ready))
            worker.start()
            assert ready.wait(60), "the worker did not start"
            if n % 2:  # a moment after the providers started answering: the dangerous window
                _wait_for_first_request(worker, (sendgrid, twilio), ids)
                time.sleep(rng.uniform(0.0, 0.05))
            else:  # any moment at all
                time.sleep(rng.uniform(0.0, 0.4))
            worker.kill()
            worker.join(30)

            _wait_for_dead_locks(db_url)
            at_kill = messages(ids)
            accepted = {mid for mid in ids
                        for fake in (sendgrid, twilio)
                        for r in fake.requests_for(mid) if r.status is not None and r.status < 300}
            unrecorded = sum(1 for mid in accepted if at_kill[mid].status == MessageStatus.sending)
            phases[_phase(worker.exitcode, Counter(m.status for m in at_kill.values()), unrecorded)] += 1

            # Recovery: the worker is dead, so everything it left in `sending` is stale now.
            reconcile_stuck(older_than=timedelta(0), now=utcnow() + timedelta(seconds=1))
            dispatch_due(adapters=adapters)

            for mid, m in messages(ids).items():
                received = [r for fake in (sendgrid, twilio) for r in fake.requests_for(mid)]
                if m.status == MessageStatus.sent:
                    assert len(received) == 1, (mid, m.status, len(received))
                    outcome["sent exactly once"] += 1
                else:
                    assert m.status == MessageStatus.reconcile, (mid, m.status, m.reason_codes)
                    assert len(received) <= 1 and m.reason_codes[-1] == "reconcile:lease_expired"
                    outcome["flagged, provider has it" if received else "flagged, provider never had it"] += 1
    finally:
        for adapter in adapters.values():
            adapter.close()

    kills = rounds - phases["after the run finished"]
    figure(f"crashes ({'sqlite' if is_sqlite(get_engine(db_url)) else 'postgresql'})",
           f"{rounds} rounds, {kills} SIGKILLs mid-dispatch ("
           + ", ".join(f"{k}: {v}" for k, v in sorted(phases.items())) + f"); {2 * PER_CHANNEL * rounds} "
           "messages: " + ", ".join(f"{v} {k}" for k, v in sorted(outcome.items()))
           + "; 0 sent twice, 0 lost")
    assert kills >= KILLS  # the kills really landed while work was going on
    assert phases["provider accepted, ledger not yet written"] > 0  # the dangerous window was hit
