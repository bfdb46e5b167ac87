"""Request body size limit: refuses large bodies with 413 before the app reads them whole.

256 KiB for everything, except where a provider is known to send more in one request: the
SendGrid Event Webhook flushes a batch at about 768 KB, so refusing that would lose events
(SendGrid would retry the same too-large batch until it gives up), and Inbound Parse posts a reply
with its attachments.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 256 * 1024
# Inbound Parse posts an email with its attachments: up to 30 MB at SendGrid (attachments are not read).
LARGER_LIMITS = {"/webhooks/sendgrid/events": 1024 * 1024, "/webhooks/sendgrid/inbound": 32 * 1024 * 1024}


class _TooLarge(Exception):
    pass


async def _refuse(send: Send) -> None:
    body = b'{"detail":"request body too large"}'
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Checks Content-Length up front and counts streamed (chunked) bodies as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES,
                 per_path: dict[str, int] | None = None) -> None:
        self.app = app
        self.default = max_bytes
        self.per_path = LARGER_LIMITS if per_path is None else per_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.per_path.get(scope.get("path", ""), self.default)
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = True  # a Content-Length that is not a number: refuse
                if too_large:
                    await _refuse(send)
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(send)
