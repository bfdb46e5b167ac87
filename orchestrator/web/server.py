"""How ``orchestrator serve`` runs the app: uvicorn with deadlines for slow clients.

uvicorn closes idle keep-alive connections, but a client that drips its request line, headers or
body a byte at a time (slowloris) holds a connection open for as long as it likes, and enough of
them exhaust the server. Here each request must finish arriving in time:

- the request line and headers within ``HEADER_TIMEOUT_SECONDS`` of the connection opening (or of
  the first byte of the next request on a kept-alive connection);
- the whole body within ``BODY_TIMEOUT_SECONDS`` of the headers (a 1 MiB SendGrid batch at 35 KB/s);
- at most ``MAX_CONNECTIONS`` connections at once (more are answered 503), headers at most 16 KiB
  (h11's limit: more is a 400), idle keep-alive connections closed after ``KEEP_ALIVE_SECONDS``.

A late client gets ``408 Request Timeout`` (unless an answer was already on its way) and the
connection is closed; one warning line says so, without the client's address.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 1000

log = logging.getLogger("orchestrator.web.access")

_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                     b"connection: close\r\ncontent-length: 16\r\n\r\nrequest too slow")


class SlowClientGuard(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the headers and one for the body of each request.

    A drip of bytes does not move a deadline: it runs from the start of the phase.
    """

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_timeout: float = BODY_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False  # uvicorn's own prints paths (tokens) and client addresses

    def connection_made(  # type: ignore[override]  # a stream transport, as uvicorn's protocol narrows it
        self, transport: asyncio.Transport
    ) -> None:
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._enter("headers")  # a connection that never sends a byte is closed too

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        super().connection_lost(exc)

    def _follow(self) -> None:
        """The phase the client is in: sending headers, sending a body, or nothing we wait for."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._enter("body")
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._enter("headers")  # part of the next request line or headers has arrived
        else:
            self._enter(None)  # request complete (the app is working) or idle: keep-alive rules

    def _enter(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None and self.transport is not None and not self.transport.is_closing():
            timeout = self.header_timeout if phase == "headers" else self.body_timeout
            self._deadline = self.loop.call_later(timeout, self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        timeout = self.header_timeout if phase == "headers" else self.body_timeout
        log.warning("closed a connection: the request %s did not arrive within %g s",
                    "line and headers" if phase == "headers" else "body", timeout)
        if phase == "headers" or (self.cycle is not None and not self.cycle.response_started):
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()  # the app, if reading the body, sees the client disconnect


def guard_with(header_timeout: float, body_timeout: float) -> type[SlowClientGuard]:
    """The protocol class with other deadlines (tests use short ones)."""
    return type("SlowClientGuard", (SlowClientGuard,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})


def server_config(app: Any, host: str, port: int, *, header_timeout: float = HEADER_TIMEOUT_SECONDS,
                  body_timeout: float = BODY_TIMEOUT_SECONDS) -> uvicorn.Config:
    """uvicorn's configuration for the app. uvicorn's own access log stays off: unsubscribe and
    preference URLs carry customers' tokens (``orchestrator.web.access_log`` logs requests instead)."""
    return uvicorn.Config(
        app, host=host, port=port, http=guard_with(header_timeout, body_timeout), log_config=None,
        access_log=False, proxy_headers=True, timeout_keep_alive=KEEP_ALIVE_SECONDS,
        limit_concurrency=MAX_CONNECTIONS,
    )
