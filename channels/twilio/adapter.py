"""SMS through Twilio Programmable Messaging, with the official ``twilio`` SDK."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels import builtin
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
from channels.results import (
    accepted,
    header,
    permanent,
    redact_text,
    retry_after_seconds,
    safe_headers,
    transient,
)
from channels.settings import AdapterSettings, current
from channels.twilio.errors import ERRORS
from channels.twilio.settings import TwilioSettings

PROVIDER = "twilio"

# The SDK logs each request's parameters (phone numbers, bodies) at INFO: keep them out of logs.
_quiet_logger = logging.getLogger("channels.twilio.http")
_quiet_logger.setLevel(logging.WARNING)


class _RecordingHttpClient(TwilioHttpClient):
    """Keeps the last response so a 429's Retry-After is readable after the SDK raised."""

    last_response: Response | None = None

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.last_response = None
        self.last_response = super().request(*args, **kwargs)
        return self.last_response


class TwilioSmsAdapter:
    name: ClassVar[str] = "twilio"
    channel: ClassVar[str] = "sms"
    channel_spec: ClassVar[ChannelSpec] = builtin.SMS
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        public_base_url: str | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
    ):
        s, shared = current(TwilioSettings), current(AdapterSettings)
        self.account_sid = account_sid or s.account_sid
        token = auth_token or (s.auth_token.get_secret_value() if s.auth_token else None)
        if not self.account_sid or not token:
            raise ConfigurationError("Twilio needs ORCH_TWILIO_ACCOUNT_SID and ORCH_TWILIO_AUTH_TOKEN")
        self._auth_token = token
        self.from_number = from_number or s.from_number
        self.messaging_service_sid = messaging_service_sid or s.messaging_service_sid
        if not self.from_number and not self.messaging_service_sid:
            raise ConfigurationError(
                "Twilio needs a sender: ORCH_TWILIO_FROM_NUMBER or ORCH_TWILIO_MESSAGING_SERVICE_SID"
            )
        self.base_url = (base_url or s.base_url or "").rstrip("/") or None
        self.public_base_url = (public_base_url or s.public_base_url).rstrip("/")
        self.timeout = timeout or shared.timeout_seconds
        workers = concurrency or shared.concurrency
        self.limits = Limits(max_batch=max(100, workers * 25), rate_per_second=s.rate or None)
        self._pool: PerThreadPool[Client] = PerThreadPool(self._new_client, workers, "twilio")

    @classmethod
    def configured(cls) -> bool:
        s = current(TwilioSettings)
        return bool(s.account_sid and s.auth_token and (s.from_number or s.messaging_service_sid))

    def _new_client(self) -> Client:
        http_client = _RecordingHttpClient(timeout=self.timeout, pool_connections=True, logger=_quiet_logger)
        client = Client(self.account_sid, self._auth_token, http_client=http_client)
        settle_environment(http_client.session, self.base_url or client.api.base_url)
        if self.base_url:
            client.api.base_url = self.base_url
            # TWILIO_EDGE / TWILIO_REGION rewrite hostnames ("api.edge.region.twilio.com"): applied to a
            # custom base URL such as http://127.0.0.1:PORT they would mangle it, so they do not apply.
            client.edge = None
            client.region = None
        return client

    def status_callback(self, message_id: int) -> str:
        return f"{self.public_base_url}/webhooks/twilio/status?message_id={message_id}"

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        return self._pool.map(PROVIDER, self._send_one, batch)

    def _send_one(self, client: Client, message: OutboundMessage) -> SendResult:
        params: dict[str, Any] = {
            "to": message.to,
            "body": message.body,
            "status_callback": self.status_callback(message.message_id),
        }
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        try:
            sent = client.messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            return _from_twilio_error(message, exc, client.http_client)
        except TwilioException as exc:  # any other SDK failure: nothing was accepted
            return transient(message, PROVIDER, f"twilio_error:{type(exc).__name__}")
        except requests.Timeout:
            return transient(message, PROVIDER, "timeout")
        except requests.ConnectionError as exc:
            return transient(message, PROVIDER, f"connection_error:{type(exc).__name__}")
        raw = {"status": sent.status, "num_segments": sent.num_segments, "sid": sent.sid}
        return accepted(message, PROVIDER, sent.sid, raw)

    def close(self) -> None:
        self._pool.close(close_client)


def close_client(client: Client) -> None:
    """Closes the SDK client's HTTP session (its kept-alive connections)."""
    session = getattr(client.http_client, "session", None)
    if session is not None:
        session.close()


def _from_twilio_error(
    message: OutboundMessage, exc: TwilioRestException | TwilioServiceException, http_client: Any
) -> SendResult:
    status = int(exc.status or 0)
    code = int(exc.code) if exc.code else None
    text = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
    last = getattr(http_client, "last_response", None)
    raw: dict[str, Any] = {"status_code": status, "code": code, "message": redact_text(str(text or ""))}
    if last is not None:
        raw["headers"] = safe_headers(last.headers)
    detail = f"twilio {code}: {text}" if code else f"HTTP {status}: {text}"
    known = ERRORS.get(code) if code is not None else None
    if status == 429 or (known is not None and known.reason is None):
        retry_after = retry_after_seconds(header(last.headers if last else None, "Retry-After"))
        return transient(message, PROVIDER, "rate_limited", retry_after, raw)
    if status >= 500:
        return transient(message, PROVIDER, f"server_error:{status}", raw=raw)
    if known is not None and known.reason is not None:
        # PermanentReason.unsubscribed: the recipient opted out at the carrier/Twilio level.
        # Adapters never write policy: the dispatcher records the opt-out from this result.
        return permanent(message, PROVIDER, known.reason, detail, raw, known.suppress)
    if status in (401, 403):
        return permanent(message, PROVIDER, PermanentReason.unauthorized, detail, raw)
    return permanent(message, PROVIDER, PermanentReason.rejected, detail, raw)
