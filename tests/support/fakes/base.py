"""A threaded HTTP/1.1 server base for fake providers: recording, fault injection, one-send replies.

Every response (status line, headers and body) is written with one ``sendall``: writing headers
and body separately meets Nagle's algorithm and delayed ACKs and adds about 40 ms per request.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class Fault(StrEnum):
    rate_limit = "rate_limit"  # 429 with the provider's rate-limit headers
    server_error = "server_error"  # 500
    unavailable = "unavailable"  # 503
    slow = "slow"  # answers normally after `slow_seconds`
    timeout = "timeout"  # holds the request for `hang_seconds`, then closes without answering
    reset = "reset"  # closes the connection with a TCP reset, no answer
    invalid_address = "invalid_address"  # the provider's invalid-recipient error
    unsubscribed = "unsubscribed"  # the provider's opted-out error (Twilio 21610)
    unauthorized = "unauthorized"  # 401 with the provider's error body


# Provider trouble every adapter must report as transient, with the reason it should give.
TRANSIENT_FAULTS = [
    (Fault.server_error, "server_error:500"),
    (Fault.unavailable, "server_error:503"),
    (Fault.timeout, "timeout"),
    (Fault.reset, "connection_error"),
]


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    data: Any  # parsed JSON or form fields
    message_id: str | None  # our message id, when the request carries it
    address: str | None  # the recipient
    status: int | None = None  # what the fake answered (None: no answer, a fault)
    fault: Fault | None = None
    client: tuple[str, int] | None = None  # the client's (host, port): one per TCP connection
    # A request to many recipients (SendGrid personalizations) is recorded once per recipient:
    # ``index`` is this recipient's place in it, ``http`` the HTTP request they share.
    index: int = 0
    http: RecordedRequest | None = None
    received_at: float = 0.0  # time.time() when the request arrived


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON, bytes/str as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)


class _NoAnswer(Exception):
    """Raised by a handler to drop the request without a response."""


class FakeProvider:
    """Subclasses implement ``route`` (returns a Reply) and ``fault_reply`` (the provider's error)."""

    name = "fake"

    def __init__(self, *, latency: float = 0.0, slow_seconds: float = 1.0, hang_seconds: float = 2.0):
        self.latency = latency  # added to every answer: stands in for the network round trip
        self.slow_seconds = slow_seconds
        self.hang_seconds = hang_seconds
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._planned: list[Fault] = []
        self._fault_probability = 0.0
        self._fault_kinds: tuple[Fault, ...] = ()
        self._rng = random.Random(0)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._rate: float | None = None  # HTTP requests per second this provider takes
        self._burst = 1.0
        self._arrivals: list[float] = []
        self.rate_limited = 0  # 429s answered because the rate was exceeded

    # ----- life cycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self.name} fake is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeProvider:
        server = _Server(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"fake-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- faults -----------------------------------------------------------------------
    def fail_next(self, n: int, kind: Fault | str) -> None:
        """The next ``n`` requests get fault ``kind``."""
        with self._lock:
            self._planned.extend([Fault(kind)] * n)

    def fault_plan(self, probability: float, kinds: Iterable[Fault | str], seed: int = 0) -> None:
        """Each request gets one of ``kinds`` with ``probability`` (reproducible with ``seed``)."""
        with self._lock:
            self._fault_probability = probability
            self._fault_kinds = tuple(Fault(k) for k in kinds)
            self._rng = random.Random(seed)

    def enforce_rate(self, per_second: float | None, burst: float = 1.0) -> None:
        """Answers 429 (the provider's rate-limit reply) to any request beyond ``per_second`` plus
        ``burst`` in the last second, as a real provider does; refused requests do not count."""
        with self._lock:
            self._rate, self._burst = per_second, burst
            self._arrivals.clear()

    def _over_rate(self, now: float) -> bool:
        with self._lock:
            if self._rate is None:
                return False
            while self._arrivals and self._arrivals[0] <= now - 1.0:
                self._arrivals.pop(0)
            if len(self._arrivals) >= self._rate + self._burst:
                self.rate_limited += 1
                return True
            self._arrivals.append(now)
            return False

    def per_second_counts(self) -> list[int]:
        """Accepted HTTP requests in every one-second window starting at an accepted request."""
        with self._lock:
            times = sorted({id(r.http or r): r.received_at for r in self.requests
                            if r.status is not None and 200 <= r.status < 300}.values())
        counts, end = [], 0
        for i, start in enumerate(times):
            while end < len(times) and times[end] < start + 1.0:
                end += 1
            counts.append(end - i)
        return counts

    def clear_faults(self) -> None:
        with self._lock:
            self._planned.clear()
            self._fault_probability = 0.0

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if self._planned:
                return self._planned.pop(0)
            if self._fault_kinds and self._rng.random() < self._fault_probability:
                return self._rng.choice(self._fault_kinds)
        return None

    # ----- recording --------------------------------------------------------------------
    def requests_for(self, message_id: int | str) -> list[RecordedRequest]:
        """Requests that carried our message id (to count sends per message)."""
        with self._lock:
            return [r for r in self.requests if r.message_id == str(message_id)]

    def requests_to(self, address: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.address == address]

    def accepted(self) -> list[RecordedRequest]:
        """Requests the fake answered with a 2xx."""
        with self._lock:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._planned.clear()
            self._fault_probability = 0.0
            self._arrivals.clear()
            self.rate_limited = 0

    # ----- to implement -----------------------------------------------------------------
    def parse(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[Any, str | None, str | None]:
        """Returns (parsed data, our message id, recipient address)."""
        raise NotImplementedError

    def recipients(self, data: Any) -> list[tuple[str | None, str | None]] | None:
        """(message id, address) per recipient when one request carries several, else None."""
        return None

    def route(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def fault_reply(self, fault: Fault, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    # ----- dispatch ---------------------------------------------------------------------
    def _handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes, client: tuple[str, int]
    ) -> Reply:
        parts = urlsplit(raw_path)
        data, message_id, address = self.parse(method, parts.path, headers, body)
        request = RecordedRequest(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query),
            headers=headers,
            body=body,
            data=data,
            message_id=message_id,
            address=address,
            client=client,
            received_at=time.time(),
        )
        many = self.recipients(data)
        recorded = [request]
        if many:
            recorded = [replace(request, message_id=mid, address=addr, index=i, http=request)
                        for i, (mid, addr) in enumerate(many)]
        with self._lock:
            self.requests.extend(recorded)
        fault = Fault.rate_limit if self._over_rate(request.received_at) else self._next_fault()
        for each in recorded:
            each.fault = fault
        if self.latency:
            time.sleep(self.latency)
        if fault is Fault.timeout:
            time.sleep(self.hang_seconds)
            raise _NoAnswer
        if fault is Fault.reset:
            raise _NoAnswer
        if fault is Fault.slow:
            time.sleep(self.slow_seconds)
            fault = None
        reply = self.fault_reply(fault, request) if fault is not None else self.route(request)
        for each in recorded:
            each.status = reply.status
        return reply


class _Server(ThreadingHTTPServer):
    # A real API takes bursts of new connections; the default backlog of 5 reset some of them
    # when many clients each opened their own connection at once.
    request_queue_size = 256


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def form_body(body: bytes) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}


def _encode(reply: Reply) -> bytes:
    headers = dict(reply.headers)
    if reply.body is None:
        payload = b""
    elif isinstance(reply.body, bytes):
        payload = reply.body
    elif isinstance(reply.body, str):
        payload = reply.body.encode()
    else:
        payload = json.dumps(reply.body).encode()
        headers.setdefault("Content-Type", "application/json")
    headers["Content-Length"] = str(len(payload))
    head = f"HTTP/1.1 {reply.status} {responses.get(reply.status, 'Unknown')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + payload


def _make_handler(fake: FakeProvider) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items()}
            try:
                reply = fake._handle(self.command, self.path, headers, body, self.client_address[:2])
            except _NoAnswer:
                self._abort()
                return
            self.wfile.write(_encode(reply))  # wfile is unbuffered: one sendall

        def _abort(self) -> None:
            # SO_LINGER 0: close() sends RST, the client sees a reset connection.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        do_POST = do_GET = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
            pass

    return Handler
