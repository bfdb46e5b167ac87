"""The fake providers (SendGrid, Twilio, X) in a process of their own, so their CPU is not the bench's.

Every measurement (orchestrated runs and baselines alike) talks to the same servers, configured
the same way (``latency`` seconds added to each answer to stand in for the network). The parent
asks for what the fakes accepted through a pipe: totals and the most requests any one address got,
which is how the caps are checked at the provider's end.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tests.support.fakes import FakeSendGrid, FakeTwilio, FakeX


@dataclass(frozen=True)
class FakeEndpoints:
    sendgrid_url: str
    sendgrid_api_key: str
    twilio_url: str
    twilio_account_sid: str
    twilio_auth_token: str
    x_url: str

    def env(self, timeout: float = 10.0) -> dict[str, str]:
        """The settings that point the registry's adapters at these fakes (real SDKs, local HTTP)."""
        return {
            "ORCH_SENDGRID_API_KEY": self.sendgrid_api_key, "ORCH_SENDGRID_HOST": self.sendgrid_url,
            "ORCH_TWILIO_ACCOUNT_SID": self.twilio_account_sid,
            "ORCH_TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "ORCH_TWILIO_FROM_NUMBER": "+15557654321", "ORCH_TWILIO_BASE_URL": self.twilio_url,
            # The fake is no long code (1 SMS/s by default); a policy's rates still apply.
            "ORCH_TWILIO_RATE": "1000",
            "ORCH_X_CONSUMER_KEY": "ck", "ORCH_X_CONSUMER_SECRET": "cs", "ORCH_X_ACCESS_TOKEN": "at",
            "ORCH_X_ACCESS_TOKEN_SECRET": "ats", "ORCH_X_API_BASE_URL": self.x_url,
            "ORCH_PROVIDER_TIMEOUT_SECONDS": str(timeout),
            "ORCH_PUBLIC_BASE_URL": "https://hooks.example.com",
        }


def _tally(fakes: dict[str, Any], watched: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fake in fakes.items():
        accepted = fake.accepted()
        per_address = Counter(r.address for r in accepted if r.address)
        per_message = Counter(r.message_id for r in accepted if r.message_id)
        out[name] = {
            "requests": len(fake.requests),
            "accepted": len(accepted),
            "addresses": len(per_address),
            "max_per_address": max(per_address.values(), default=0),
            "max_per_message": max(per_message.values(), default=0),
            "watched_accepted": sum(per_address[a] for a in watched),
            "rate_limited": fake.rate_limited,
        }
    return out


PUBLIC_POST_PATH = "/2/tweets"  # X's endpoint for a public post, which goes to no customer


def _marked(fakes: dict[str, Any], since: float, marker: bytes) -> dict[str, Any]:
    """When messages to customers carrying ``marker`` in their body first and last reached any fake
    after ``since``; ``post``: when the first public post carrying it did."""
    times, posts = [], []
    for fake in fakes.values():
        with fake._lock:
            recent = [r for r in fake.requests if r.received_at >= since]
        seen: set[int] = set()
        for r in recent:  # one record per recipient; ``http`` is the request they share
            request = r.http or r
            if id(request) in seen or r.status is None or not 200 <= r.status < 300:
                continue
            seen.add(id(request))
            if marker in request.body:
                (posts if request.path == PUBLIC_POST_PATH else times).append(request.received_at)
    return {"first": min(times, default=None), "last": max(times, default=None), "requests": len(times),
            "post": min(posts, default=None)}


def _arrivals(fakes: dict[str, Any], since: float) -> dict[str, Any]:
    """Per provider, what it accepted after ``since``: the arrival time of every HTTP request and of
    every message (our message id -> time; a merged request counts once as a request), and its 429s."""
    out: dict[str, Any] = {}
    for name, fake in fakes.items():
        with fake._lock:
            recent = [r for r in fake.requests if r.received_at >= since]
        accepted = [r for r in recent if r.status is not None and 200 <= r.status < 300]
        requests = {id(r.http or r): r.received_at for r in accepted}
        out[name] = {"requests": sorted(requests.values()),
                     "messages": {r.message_id: r.received_at for r in accepted if r.message_id},
                     "rate_limited": fake.rate_limited}
    return out


def _serve(conn: Connection, latency: float) -> None:
    fakes = {"sendgrid": FakeSendGrid(latency=latency), "twilio": FakeTwilio(latency=latency),
             "x": FakeX(latency=latency)}
    for fake in fakes.values():
        fake.start()
    sg, tw = fakes["sendgrid"], fakes["twilio"]
    conn.send(FakeEndpoints(sg.url, sg.api_key, tw.url, tw.account_sid, tw.auth_token, fakes["x"].url))
    try:
        while True:
            command, argument = conn.recv()
            if command == "tally":
                conn.send(_tally(fakes, frozenset(argument or ())))
            elif command == "arrivals":
                conn.send(_arrivals(fakes, argument))
            elif command == "marked":
                conn.send(_marked(fakes, argument[0], argument[1].encode()))
            elif command == "rates":
                for name, rate in argument.items():
                    fakes[name].enforce_rate(rate, burst=max(1.0, rate * 0.1) if rate else 1.0)
                conn.send("ok")
            elif command == "reset":
                for fake in fakes.values():
                    fake.reset()
                conn.send("ok")
            else:
                break
    finally:
        for fake in fakes.values():
            fake.stop()


class FakesProcess:
    """``with FakesProcess(latency=0.005) as fakes: fakes.endpoints.env(); fakes.tally()``."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self._conn: Connection | None = None
        self._process: mp.Process | None = None
        self.endpoints: FakeEndpoints | None = None

    def __enter__(self) -> FakesProcess:
        parent, child = mp.get_context("spawn").Pipe()
        self._process = mp.get_context("spawn").Process(target=_serve, args=(child, self.latency),
                                                        name="fake-providers", daemon=True)
        self._process.start()
        self._conn = parent
        self.endpoints = parent.recv()
        return self

    def _ask(self, command: str, argument: Any = None) -> Any:
        assert self._conn is not None, "the fakes are not running"
        self._conn.send((command, argument))
        return self._conn.recv()

    def tally(self, watched: list[str] | None = None) -> dict[str, Any]:
        """Per provider: requests, accepted, distinct addresses, most accepted for one address, and
        how many accepted requests went to the ``watched`` addresses."""
        return self._ask("tally", watched)

    def reset(self) -> None:
        self._ask("reset")

    def marked(self, since: float, marker: str) -> dict[str, Any]:
        """First and last accepted request to a customer carrying ``marker`` since ``since`` (epoch
        seconds), and the first public post carrying it."""
        return self._ask("marked", (since, marker))

    def arrivals(self, since: float) -> dict[str, Any]:
        """Per provider: accepted request times, message id -> arrival time, and 429s answered."""
        return self._ask("arrivals", since)

    def enforce_rates(self, rates: dict[str, float | None]) -> None:
        """Requests per second each fake takes before it answers 429 (``None``: any)."""
        self._ask("rates", rates)

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.send(("stop", None))
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.terminate()
