"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` SDK."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from python_http_client.exceptions import HTTPError as SendGridHTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Category,
    CustomArg,
    From,
    Header,
    HtmlContent,
    Mail,
    MailSettings,
    PlainTextContent,
    ReplyTo,
    SandBoxMode,
    To,
)

from channels.base import ConfigurationError, Limits, OutboundMessage, PermanentReason, SendResult
from channels.concurrency import PerThreadPool
from channels.keepalive_http import KeepAliveClient
from channels.results import accepted, header, permanent, safe_headers, seconds_until, transient
from orchestrator.privacy import redact_text
from orchestrator.settings import Settings, get_settings

PROVIDER = "sendgrid"


class SendGridEmailAdapter:
    name: ClassVar[str] = "sendgrid"
    channel: ClassVar[str] = "email"
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        api_key: str | None = None,
        host: str | None = None,
        from_email: str | None = None,
        from_name: str | None = None,
        reply_to: str | None = None,
        sandbox: bool | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        keep_alive: bool = True,
    ):
        s = settings or get_settings()
        key = api_key or (s.sendgrid_api_key.get_secret_value() if s.sendgrid_api_key else None)
        if not key:
            raise ConfigurationError("SendGrid needs an API key: set ORCH_SENDGRID_API_KEY")
        self._api_key = key
        self.host = (host or s.sendgrid_host).rstrip("/")
        self.from_email = from_email or s.sendgrid_from_email
        self.from_name = from_name if from_name is not None else s.sendgrid_from_name
        self.reply_to = reply_to if reply_to is not None else s.sendgrid_reply_to
        self.sandbox = s.sendgrid_sandbox if sandbox is None else sandbox
        self.timeout = timeout or s.provider_timeout_seconds
        self.keep_alive = keep_alive
        workers = concurrency or s.provider_concurrency
        self.limits = Limits(max_batch=max(100, workers * 25), rate_per_second=None, max_length=None)
        self._pool: PerThreadPool[SendGridAPIClient] = PerThreadPool(self._new_client, workers, "sendgrid")

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return settings.sendgrid_api_key is not None

    def _new_client(self) -> SendGridAPIClient:
        sg = SendGridAPIClient(api_key=self._api_key, host=self.host)
        if self.keep_alive:
            sg.client = KeepAliveClient(
                host=sg.host, request_headers=sg._default_headers, version=3, timeout=self.timeout
            )
        else:
            sg.client.timeout = self.timeout  # the SDK's default is no timeout at all
        return sg

    def build_mail(self, message: OutboundMessage) -> Mail:
        mail = Mail(
            from_email=From(self.from_email, self.from_name or None),
            to_emails=To(message.to),
            subject=message.subject or "",
            plain_text_content=PlainTextContent(message.body),
            html_content=HtmlContent(message.html) if message.html else None,
        )
        if self.reply_to:
            mail.reply_to = ReplyTo(self.reply_to)
        # Event webhooks echo custom_args back: this is how delivery events find their message.
        mail.custom_arg = CustomArg("message_id", str(message.message_id))
        if message.categories:
            mail.category = [Category(c) for c in message.categories]
        if message.marketing and message.unsubscribe_url:
            mail.header = [
                Header("List-Unsubscribe", f"<{message.unsubscribe_url}>"),
                Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ]
        if self.sandbox:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        return mail

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        return self._pool.map(PROVIDER, self._send_one, batch)

    def _send_one(self, sg: SendGridAPIClient, message: OutboundMessage) -> SendResult:
        if "@" not in message.to:
            return permanent(message, PROVIDER, PermanentReason.invalid_address, "not an email address")
        try:
            mail = self.build_mail(message)
        except (ValueError, KeyError, TypeError) as exc:  # the SDK's helpers refuse the input
            return permanent(message, PROVIDER, PermanentReason.rejected, f"unbuildable email: {exc!r}")
        try:
            response = sg.send(mail)
        except SendGridHTTPError as exc:
            return _from_http_error(message, exc)
        except TimeoutError:
            return transient(message, PROVIDER, "timeout")
        except OSError as exc:  # URLError, refused, reset: nothing reached SendGrid's API
            return transient(message, PROVIDER, f"connection_error:{type(exc).__name__}")
        raw = {"status_code": response.status_code, "headers": safe_headers(response.headers)}
        return accepted(message, PROVIDER, header(response.headers, "X-Message-Id"), raw)

    def close(self) -> None:
        def close_client(sg: SendGridAPIClient) -> None:
            if isinstance(sg.client, KeepAliveClient):
                sg.client.connection.close()

        self._pool.close(close_client)


def _from_http_error(message: OutboundMessage, exc: SendGridHTTPError) -> SendResult:
    status = int(exc.status_code)
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    raw: dict[str, Any] = {
        "status_code": status,
        "headers": safe_headers(exc.headers),
        "body": redact_text(body),
    }
    if status == 429:
        retry_after = seconds_until(header(exc.headers, "X-RateLimit-Reset"))
        return transient(message, PROVIDER, "rate_limited", retry_after, raw)
    if status >= 500:
        return transient(message, PROVIDER, f"server_error:{status}", raw=raw)
    errors = _errors(body)
    detail = "; ".join(f"{e.get('field') or '-'}: {e.get('message')}" for e in errors) or f"HTTP {status}"
    if status in (401, 403):
        return permanent(message, PROVIDER, PermanentReason.unauthorized, detail, raw)
    if status == 413:
        return permanent(message, PROVIDER, PermanentReason.too_long, detail, raw)
    if any(
        str(e.get("field") or "").startswith("personalizations") and "email" in str(e.get("field"))
        for e in errors
    ):
        return permanent(message, PROVIDER, PermanentReason.invalid_address, detail, raw)
    return permanent(message, PROVIDER, PermanentReason.rejected, detail, raw)


def _errors(body: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
