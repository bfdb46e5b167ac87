"""The WhatsApp adapter: Twilio's Messages API through the official SDK, WhatsApp's rules on top."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels.base import (
    ChannelSpec,
    ConfigurationError,
    Limits,
    OutboundMessage,
    PermanentReason,
    SendResult,
)
from channels.concurrency import PerThreadPool
from channels.http_env import settle_environment
from channels.results import accepted, permanent, transient
from channels.twilio.adapter import close_client
from channels.twilio.errors import known_error
from channels.whatsapp import PREFIX, WHATSAPP, WINDOW_HOURS
from channels.whatsapp.settings import ContentMap, WhatsAppSettings, load_content_map, template_for

PROVIDER = "twilio-whatsapp"

# What a refusal means, in words for the ledger (Twilio's own text may repeat the number).
_WORDS = {PermanentReason.outside_window: "outside the window", PermanentReason.invalid_address:
          "not a WhatsApp number", PermanentReason.rejected: "template refused"}

_quiet_logger = logging.getLogger("channels.whatsapp.http")  # the SDK logs numbers at INFO
_quiet_logger.setLevel(logging.WARNING)


class TwilioWhatsAppAdapter:
    name: ClassVar[str] = "twilio-whatsapp"
    channel: ClassVar[str] = "whatsapp"
    channel_spec: ClassVar[ChannelSpec] = WHATSAPP
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        config: WhatsAppSettings | None = None,
        content: ContentMap | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        s = config or WhatsAppSettings()
        if not s.complete:
            raise ConfigurationError(
                "WhatsApp needs ORCH_TWILIO_ACCOUNT_SID, ORCH_TWILIO_AUTH_TOKEN and "
                "ORCH_TWILIO_WHATSAPP_FROM or ORCH_TWILIO_WHATSAPP_MESSAGING_SERVICE_SID"
            )
        self.settings = s
        self.content = content if content is not None else load_content_map(s.whatsapp_content_file)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.limits = Limits(max_batch=max(100, s.concurrency * 25))
        self._pool: PerThreadPool[Client] = PerThreadPool(self._new_client, s.concurrency, "whatsapp")

    @classmethod
    def configured(cls) -> bool:
        return WhatsAppSettings().complete

    def _new_client(self) -> Client:
        s = self.settings
        http_client = TwilioHttpClient(timeout=s.timeout_seconds, pool_connections=True, logger=_quiet_logger)
        assert s.auth_token is not None
        client = Client(s.account_sid, s.auth_token.get_secret_value(), http_client=http_client)
        settle_environment(http_client.session, (s.base_url or "").rstrip("/") or client.api.base_url)
        if s.base_url:
            client.api.base_url = s.base_url.rstrip("/")
            client.edge = None
            client.region = None
        return client

    def in_window(self, message: OutboundMessage) -> bool:
        last = message.last_inbound_at
        return last is not None and self.clock() - last < timedelta(hours=WINDOW_HOURS)

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        return self._pool.map(PROVIDER, self._send_one, batch)

    def _send_one(self, client: Client, message: OutboundMessage) -> SendResult:
        s = self.settings
        params: dict[str, Any] = {
            "to": message.to if message.to.startswith(PREFIX) else PREFIX + message.to,
            "status_callback": f"{s.public_base_url.rstrip('/')}/webhooks/twilio/status"
                               f"?message_id={message.message_id}",
        }
        if s.whatsapp_messaging_service_sid:
            params["messaging_service_sid"] = s.whatsapp_messaging_service_sid
        else:
            params["from_"] = s.whatsapp_from
        if self.in_window(message):
            params["body"] = message.body
        else:
            template = template_for(self.content, message.template, message.locale or "en")
            if template is None:
                return permanent(message, PROVIDER, PermanentReason.outside_window,
                                  f"outside the {WINDOW_HOURS}-hour window and no approved template for "
                                  f"{message.template or 'this message'} ({message.locale or 'en'})")
            try:
                values = template.values(message.data)
            except KeyError as exc:
                return permanent(message, PROVIDER, PermanentReason.rejected,
                                  f"template {template.content_sid} needs data: {exc.args[0]}")
            params["content_sid"] = template.content_sid
            params["content_variables"] = json.dumps(values)
        try:
            sent = client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            return _from_error(message, exc)
        except TwilioException as exc:
            return transient(message, PROVIDER, f"twilio_error:{type(exc).__name__}")
        except requests.Timeout:
            return transient(message, PROVIDER, "timeout")
        except requests.ConnectionError as exc:
            return transient(message, PROVIDER, f"connection_error:{type(exc).__name__}")
        raw = {"status": sent.status, "sid": sent.sid, "template": "content_sid" in params}
        return accepted(message, PROVIDER, sent.sid, raw)

    def close(self) -> None:
        self._pool.close(close_client)


def _from_error(message: OutboundMessage, exc: TwilioRestException | TwilioServiceException) -> SendResult:
    """The send's end by Twilio's error table (``channels.twilio.errors``), which status
    callbacks read too: a refusal means the same whether it comes at once or late."""
    status = int(exc.status or 0)
    code = int(exc.code) if exc.code else None
    # Twilio's error text may repeat the number: only the code and status are kept.
    raw: dict[str, Any] = {"status_code": status, "code": code}
    detail = f"twilio {code}" if code else f"HTTP {status}"
    known = known_error(code)
    if status == 429 or (known is not None and known.reason is None):
        return transient(message, PROVIDER, "rate_limited", None, raw)
    if status >= 500:
        return transient(message, PROVIDER, f"server_error:{status}", raw=raw)
    if known is not None and known.reason is not None:
        words = _WORDS.get(known.reason)
        return permanent(message, PROVIDER, known.reason, f"{detail}: {words}" if words else detail, raw,
                         known.suppress)
    if status in (401, 403):
        return permanent(message, PROVIDER, PermanentReason.unauthorized, detail, raw)
    return permanent(message, PROVIDER, PermanentReason.rejected, detail, raw)
