"""Failing providers: rate limits with reset headers, 5xx, timeouts, resets, and a provider down for minutes.

The real SDK adapters talk to the fakes; the test drives the clock (``dispatch_due(now=...)``) from
one due time to the next, so ``retry_after`` is honoured without sleeping for real. Every request
the fakes saw is attributed to the simulated time of the round that made it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from orchestrator.dispatch.run import dispatch_due
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.models import MessageStatus, utcnow
from tests.reliability.workers import OUTAGE_FACTS
from tests.support.fakes import FakeProvider, FakeSendGrid, FakeTwilio, Fault, RecordedRequest
from tests.support.ledger import add_customers, add_messages, messages

FAULTS = [Fault.rate_limit, Fault.server_error, Fault.unavailable, Fault.timeout, Fault.reset]
SENDGRID_RESET = 120  # seconds until SendGrid's rate-limit window resets, in its 429 answers
TWILIO_RETRY_AFTER = 2  # the fake Twilio's Retry-After
TIMEOUT = 1.0  # the adapters' timeout; a `timeout` fault holds the request for longer


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSendGrid, FakeTwilio]]:
    with FakeSendGrid(hang_seconds=2.0) as sendgrid, FakeTwilio(hang_seconds=2.0) as twilio:
        sendgrid.reset_in = SENDGRID_RESET
        yield sendgrid, twilio


def _sendgrid(fake: FakeSendGrid) -> SendGridEmailAdapter:
    return SendGridEmailAdapter(api_key=fake.api_key, host=fake.url, timeout=TIMEOUT, concurrency=8)


def _twilio(fake: FakeTwilio, url: str | None = None) -> TwilioSmsAdapter:
    return TwilioSmsAdapter(account_sid=fake.account_sid, auth_token=fake.auth_token,
                            base_url=url or fake.url, from_number="+15557654321", timeout=TIMEOUT,
                            concurrency=8)


def _outage(customers: list[int]) -> list[int]:
    return (add_messages(customers, template="outage_notice", topic="outage", data=OUTAGE_FACTS, dedupe="e")
            + add_messages(customers, channel="sms", template="outage_notice", topic="outage",
                           data=OUTAGE_FACTS, dedupe="s"))


class Sweeper:
    """Runs dispatch rounds at simulated times and remembers when each request was made."""

    def __init__(self, fakes: list[FakeProvider], adapters: dict, retry: RetryPolicy) -> None:
        self.fakes, self.adapters, self.retry = fakes, adapters, retry
        self.attempts: dict[int, list[tuple[datetime, RecordedRequest]]] = defaultdict(list)
        self.rounds = 0

    def run(self, now: datetime) -> None:
        seen = [len(f.requests) for f in self.fakes]
        dispatch_due(now=now, adapters=self.adapters, retry=self.retry)
        self.rounds += 1
        for fake, start in zip(self.fakes, seen, strict=True):
            for request in fake.requests[start:]:
                self.attempts[int(request.message_id)].append((now, request))  # type: ignore[arg-type]

    def next_due(self, ids: list[int]) -> datetime | None:
        waiting = [m.send_at for m in messages(ids).values() if m.status == MessageStatus.deferred]
        return min(waiting) if waiting else None


def test_a_fifth_of_requests_failing_delays_messages_but_each_goes_out_once(sqlite_url, fakes, figure):
    sendgrid, twilio = fakes
    sendgrid.fault_plan(0.2, FAULTS, seed=7)
    twilio.fault_plan(0.2, FAULTS, seed=8)
    ids = _outage(add_customers(120))
    retry = RetryPolicy(base_seconds=1, cap_seconds=600, max_attempts=10)  # retry_after dominates
    sweeper = Sweeper([sendgrid, twilio], {"email": _sendgrid(sendgrid), "sms": _twilio(twilio)}, retry)
    now: datetime | None = utcnow()
    try:
        while now is not None and sweeper.rounds < 60:
            sweeper.run(now)
            now = sweeper.next_due(ids)
    finally:
        for adapter in sweeper.adapters.values():
            adapter.close()

    rows = messages(ids)
    faults = Counter(r.fault.value for tries in sweeper.attempts.values() for _, r in tries if r.fault)
    total = sum(len(tries) for tries in sweeper.attempts.values())
    early = []
    for mid, tries in sweeper.attempts.items():
        for n, ((before, request), (after, _)) in enumerate(zip(tries, tries[1:], strict=False), start=1):
            wait = (after - before).total_seconds()
            needed = retry.backoff(n)
            if request.status == 429:
                needed = max(needed, (SENDGRID_RESET - 1) if request.path.endswith("/mail/send")
                             else TWILIO_RETRY_AFTER)
            if wait < needed:
                early.append((mid, n, wait, needed))
    accepted = Counter(mid for mid, tries in sweeper.attempts.items() for _, r in tries
                       if r.status is not None and r.status < 300)
    retried = sum(1 for tries in sweeper.attempts.values() if len(tries) > 1)
    figure("provider faults", f"{len(ids)} messages, {total} send attempts, {sum(faults.values())} of them "
           f"met an injected fault ({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))}); "
           f"{retried} messages retried in {sweeper.rounds} rounds, "
           f"{len(early)} retries before retry_after/backoff; "
           f"{sum(1 for m in rows.values() if m.status == MessageStatus.sent)} sent exactly once")

    assert set(faults) == {f.value for f in FAULTS}  # every kind of fault really happened
    assert 0.1 < sum(faults.values()) / total < 0.3
    assert early == []
    assert {m.status for m in rows.values()} == {MessageStatus.sent}
    assert accepted == {mid: 1 for mid in ids}


def test_a_provider_down_for_minutes_defers_messages_and_they_go_out_when_it_returns(
        sqlite_url, fakes, figure):
    sendgrid, twilio = fakes
    sendgrid.fault_plan(1.0, [Fault.unavailable])  # SendGrid answers 503 to everything
    gone = twilio.url
    twilio.stop()  # Twilio refuses connections
    ids = _outage(add_customers(30))
    sweeper = Sweeper([sendgrid, twilio], {"email": _sendgrid(sendgrid), "sms": _twilio(twilio, gone)},
                      RetryPolicy())
    start = now = utcnow()
    reasons: Counter[str] = Counter()
    try:
        while now is not None and now < start + timedelta(minutes=10):
            sweeper.run(now)
            rows = messages(ids)
            assert {m.status for m in rows.values()} == {MessageStatus.deferred}  # none dropped
            assert all(m.send_at > now and m.last_error for m in rows.values())  # each says why and when
            reasons.update(":".join(m.last_error.split(":")[:2]) for m in rows.values())
            now = sweeper.next_due(ids)
        down_rounds = sweeper.rounds

        sendgrid.clear_faults()
        twilio.start()  # back, on a new port: the SMS adapter is pointed at it
        sweeper.adapters["sms"].close()
        sweeper.adapters["sms"] = _twilio(twilio)
        while now is not None:
            sweeper.run(now)
            now = sweeper.next_due(ids)
    finally:
        for adapter in sweeper.adapters.values():
            adapter.close()

    rows = messages(ids)
    accepted = Counter(r.message_id for r in sendgrid.accepted() + twilio.accepted())
    figure("provider down", f"SendGrid 503 and Twilio refusing connections for 10 simulated minutes: "
           f"{len(ids)} messages deferred through {down_rounds} rounds (last errors: "
           f"{', '.join(sorted(reasons))}), 0 dropped; after recovery "
           f"{sum(1 for m in rows.values() if m.status == MessageStatus.sent)} sent exactly once")
    assert {m.status for m in rows.values()} == {MessageStatus.sent}
    assert accepted == {str(mid): 1 for mid in ids}
    assert down_rounds >= 3  # several attempts fell inside the outage
