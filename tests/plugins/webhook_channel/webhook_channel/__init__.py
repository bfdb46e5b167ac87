"""A webhook channel: each message is POSTed as JSON to the customer's own URL.

Written as any third party would write a channel: it imports only ``channels.base`` (the
plug-in interface), declares its channel with a ``ChannelSpec`` and registers the adapter under
the ``orchestrator.channels`` entry point ``webhook`` (see pyproject.toml).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from channels.base import (
    AddressKind,
    ChannelSpec,
    Limits,
    OutboundMessage,
    Permanent,
    PermanentReason,
    ResultStatus,
    SendResult,
    Transient,
)


def normalise_url(value: str, _region: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not a webhook URL (expected http:// or https:// with a host)")
    return parts.geturl()


def mask_url(value: str) -> str:
    parts = urlsplit(value)
    return f"{parts.scheme}://{parts.hostname}/***"


WEBHOOK = ChannelSpec(
    "webhook",
    AddressKind("url", normalise_url, mask_url, "an http(s) URL"),
    label="Webhook",
    cost=0.5,
    variants={"webhook": {"text": "webhook.txt"}},
    max_chars=2000,
)


class WebhookAdapter:
    name: ClassVar[str] = "webhook"
    channel: ClassVar[str] = "webhook"
    channel_spec: ClassVar[ChannelSpec] = WEBHOOK
    provider: ClassVar[str] = "webhook"

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.limits = Limits(max_batch=50)
        self.session = requests.Session()

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: OutboundMessage) -> SendResult:
        payload: dict[str, Any] = {"message_id": message.message_id, "topic": message.topic,
                                   "template": message.template, "text": message.body}
        try:
            reply = self.session.post(message.to, json=payload, timeout=self.timeout)
        except requests.RequestException as exc:
            return self._result(message, ResultStatus.transient, Transient(type(exc).__name__))
        if reply.status_code < 300:
            return SendResult(message.message_id, ResultStatus.accepted, self.provider,
                              reply.headers.get("X-Request-Id"))
        if reply.status_code == 429 or reply.status_code >= 500:
            return self._result(message, ResultStatus.transient, Transient(f"http_{reply.status_code}"))
        gone = reply.status_code in (404, 410)  # the customer's endpoint no longer exists
        reason = PermanentReason.invalid_address if gone else PermanentReason.rejected
        return self._result(message, ResultStatus.permanent, Permanent(reason, f"HTTP {reply.status_code}"))

    def _result(self, message: OutboundMessage, status: ResultStatus, error: Any) -> SendResult:
        return SendResult(message.message_id, status, self.provider, error=error)

    def close(self) -> None:
        self.session.close()
