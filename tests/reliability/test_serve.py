"""``orchestrator serve`` under slow clients, and its access log.

Slow clients against the real server: a request that arrives too slowly is cut off.

``orchestrator serve`` runs uvicorn with ``orchestrator.web.server``'s deadlines; here they are
1 s for headers and 1 s for a body, and each hostile client would take 20 s or more to finish.
Raw sockets, because an HTTP client library will not send a request this badly.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from orchestrator.links import LinkClaims, make_token
from orchestrator.web import create_app
from orchestrator.web.server import server_config
from tests.support.web import INCIDENT_TOKEN, WebApp, add_customer, configure
from tests.support.web import web_fixture as web_fixture  # the `web` fixture

DEADLINE = 1.0
DRIP_SECONDS = 0.1  # a byte every 0.1 s: 200 bytes take 20 s, far past any deadline
# Signed (badly): the app must read the whole form before it can check the signature.
HEADERS = (b"POST /webhooks/twilio/inbound HTTP/1.1\r\nHost: hooks.example.com\r\nX-Twilio-Signature: x\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n")


@pytest.fixture
def server(sqlite_url, monkeypatch) -> Iterator[tuple[str, int]]:
    configure(monkeypatch)
    config = server_config(create_app(), "127.0.0.1", 0, header_timeout=DEADLINE, body_timeout=DEADLINE)
    config.install_signal_handlers = False  # type: ignore[attr-defined]
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield "127.0.0.1", port
    srv.should_exit = True
    thread.join(10)


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=15)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _drip(sock: socket.socket, data: bytes) -> int:
    """Sends ``data`` a byte at a time until the server answers or closes; returns bytes sent."""
    for sent in range(len(data)):
        readable, _, _ = select.select([sock], [], [], DRIP_SECONDS)
        if readable:
            return sent
        try:
            sock.sendall(data[sent:sent + 1])
        except OSError:
            return sent
    return len(data)


def _read_to_close(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _health_answer(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b'{"ok":true,"database":"ok"}'):
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: hooks.example.com\r\n\r\n".encode()


def _cut_off(address, prefix: bytes, dripped: bytes) -> tuple[int, bytes]:
    with _connect(address) as sock:
        if prefix:
            sock.sendall(prefix)
        if prefix.startswith(b"GET"):  # a whole first request: its answer comes before the drip
            assert _health_answer(sock).startswith(b"HTTP/1.1 200")
        sent = _drip(sock, dripped)
        return sent, _read_to_close(sock)


def test_slow_headers_and_bodies_are_cut_off_and_normal_requests_are_not(server, figure, caplog):
    caplog.set_level(logging.INFO)
    clients = {
        "silent connection": (b"", b""),
        "request line and headers a byte at a time": (b"", HEADERS),
        "body a byte at a time": (HEADERS, b"Body=" + b"x" * 195),
        "second request on a kept-alive connection dripped": (_request("/healthz"), _request("/healthz") * 5),
    }
    cut = {}
    for name, (prefix, dripped) in clients.items():
        started = time.monotonic()
        sent, answer = _cut_off(server, prefix, dripped)
        cut[name] = time.monotonic() - started
        assert sent < len(dripped) or not dripped, name  # cut off before the request was complete
        assert answer.endswith(b"request too slow"), (name, answer)
        assert answer.count(b"HTTP/1.1 408") == 1, name
        assert cut[name] < 10 * DEADLINE, name

    # A well-behaved client is served, and kept alive for a second request.
    with _connect(server) as sock:
        for _ in range(2):
            sock.sendall(_request("/healthz"))
            assert _health_answer(sock).startswith(b"HTTP/1.1 200")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []  # a client cut off mid-body is not an application error
    warnings = [r.getMessage() for r in caplog.records if r.name == "orchestrator.web.access"
                and r.levelno == logging.WARNING]
    assert len(warnings) == len(clients) and all("did not arrive within 1 s" in w for w in warnings)
    figure("slow clients", f"{len(clients)} slow clients (silent, headers or body a byte every 0.1 s, a "
           "dripped second request) answered 408 and cut off at the 1 s deadline (each would have "
           "taken up to 20 s); well-behaved requests served")


def test_each_request_is_logged_once_without_tokens_or_personal_data(web: WebApp, sqlite_url, caplog, figure):
    caplog.set_level(logging.INFO, logger="orchestrator.web.access")
    ada = add_customer()
    token = make_token(LinkClaims(customer_id=ada.id, purpose="unsubscribe", channel="email"))
    secrets = [token, INCIDENT_TOKEN, "ada@example.com", "+14155550100", "4155550100", "SM" + "7" * 32]
    client = web.client
    requests = [
        ("GET", f"/unsubscribe/{token}", lambda: client.get(f"/unsubscribe/{token}")),
        ("GET", f"/preferences/{token}?channel=sms", lambda: client.get(f"/preferences/{token}?channel=sms")),
        ("POST", "/webhooks/twilio/inbound", lambda: client.post(
            "/webhooks/twilio/inbound", data={"From": "+14155550100", "Body": "STOP ada@example.com",
                                              "MessageSid": "SM" + "7" * 32})),
        ("POST", "/webhooks/twilio/status", lambda: client.post(
            "/webhooks/twilio/status?message_id=1", data={"MessageSid": "SM" + "7" * 32})),
        ("POST", "/incidents", lambda: client.post(
            "/incidents", json={"incident_id": "x"}, headers={"Authorization": f"Bearer {INCIDENT_TOKEN}"})),
        ("POST", "/webhooks/sendgrid/events", lambda: client.post(
            "/webhooks/sendgrid/events", content=b"x" * (2 * 1024 * 1024))),
        ("GET", "/ada@example.com/4155550100", lambda: client.get("/ada@example.com/4155550100")),
    ]
    statuses = []
    for _method, _path, send in requests:
        caplog.clear()
        statuses.append(send().status_code)
        lines = [r.getMessage() for r in caplog.records if r.name == "orchestrator.web.access"]
        assert len(lines) == 1, lines
        assert f" {statuses[-1]} " in lines[0], lines
        assert not [s for s in secrets if s in lines[0]], lines
    assert 413 in statuses and 404 in statuses  # refusals before routing are logged too
    caplog.clear()
    client.get(f"/unsubscribe/{token}")
    client.get("/ada@example.com/x")
    access = [r.getMessage() for r in caplog.records if r.name == "orchestrator.web.access"]
    assert access[0].startswith("GET /unsubscribe/{token} ")
    assert access[1].startswith("GET (unknown path) 404 ")
    figure("access log", f"{len(requests)} requests (link tokens, a bearer token, phone numbers and "
           "emails in bodies, paths and query strings; one refused as too large) logged one line each "
           "with route, status, time and size: no token or personal data in any line")
