"""One log line per request, so operators can see webhook traffic, without tokens or personal data.

A line names the route as declared (``POST /unsubscribe/{token}``, never the token itself), the
status, the time taken and the body size: no query string (status callbacks carry ids there), no
client address, no header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("orchestrator.web.access")


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """``/preferences/{token}`` for ``/preferences/eyJ...``; the path of a request no route
    matches is not logged at all (it may be a token pasted anywhere)."""
    routed = scope.get("route")  # set by the router; a request refused before it is matched here
    if routed is not None and hasattr(routed, "path"):
        return str(routed.path)
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:  # PARTIAL: the path matches, the method does not (405)
            return str(getattr(route, "path", "?"))
    return "(unknown path)"


class AccessLog:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                _log_request(scope, self.routes, message["status"], started, received)
            await send(message)

        await self.app(scope, counting_receive, logging_send)


def _log_request(scope: Scope, routes: Sequence[BaseRoute], status: int, started: float,
                 received: int) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info("%s %s %d %.0fms %dB", scope.get("method", "?"), route_template(routes, scope), status,
             elapsed_ms, received)
