"""Email through SendGrid's v3 Mail Send API, with the official ``sendgrid`` SDK."""

from __future__ import annotations

import json
import logging
import re
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
from channels.keepalive_http import KeepAliveClient
from channels.results import accepted, header, permanent, redact_text, safe_headers, seconds_until, transient
from channels.sendgrid.settings import SendGridSettings
from channels.settings import AdapterSettings, current

log = logging.getLogger(__name__)

PROVIDER = "sendgrid"
MAX_PERSONALIZATIONS = 1000  # SendGrid's limit per Mail Send request
MAX_SUBSTITUTION_BYTES = 10_000  # per personalization (the documented limit has been 10 KB to 50 KB)


class SendGridEmailAdapter:
    name: ClassVar[str] = "sendgrid"
    channel: ClassVar[str] = "email"
    channel_spec: ClassVar[ChannelSpec] = builtin.EMAIL
    provider: ClassVar[str] = PROVIDER

    def __init__(
        self,
        *,
        api_key: str | None = None,
        host: str | None = None,
        from_email: str | None = None,
        from_name: str | None = None,
        reply_to: str | None = None,
        sandbox: bool | None = None,
        timeout: float | None = None,
        concurrency: int | None = None,
        keep_alive: bool = True,
        batch_size: int | None = None,
    ):
        s, shared = current(SendGridSettings), current(AdapterSettings)
        key = api_key or (s.api_key.get_secret_value() if s.api_key else None)
        if not key:
            raise ConfigurationError("SendGrid needs an API key: set ORCH_SENDGRID_API_KEY")
        self._api_key = key
        self.host = (host or s.host).rstrip("/")
        self.from_email = from_email or s.from_email
        self.from_name = from_name if from_name is not None else s.from_name
        self.reply_to = reply_to if reply_to is not None else s.reply_to
        self.sandbox = s.sandbox if sandbox is None else sandbox
        self.timeout = timeout or shared.timeout_seconds
        self.keep_alive = keep_alive
        workers = concurrency or shared.concurrency
        # Merged messages go out up to this many per request (personalizations); 1 sends one by one.
        self.batch_size = max(1, min(MAX_PERSONALIZATIONS, batch_size or s.batch_size))
        self.limits = Limits(max_batch=max(self.batch_size, workers * 25))
        self._pool: PerThreadPool[SendGridAPIClient] = PerThreadPool(self._new_client, workers, "sendgrid")

    @classmethod
    def configured(cls) -> bool:
        return current(SendGridSettings).api_key is not None

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
        headers = message.unsubscribe_headers()
        if headers:
            mail.header = [Header(name, value) for name, value in headers.items()]
        if self.sandbox:
            mail.mail_settings = MailSettings(sandbox_mode=SandBoxMode(True))
        return mail

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        """Messages from one mail merge share a request (one personalization each, their values
        as substitutions); the others go one request each. Results come back in ``batch`` order."""
        requests = self._requests(batch)
        results = self._pool.run_each(self._send_request, requests, self._request_failed)
        by_id = {r.message_id: r for group in results for r in group}
        return [by_id[m.message_id] for m in batch]

    def requests_for(self, batch: list[OutboundMessage]) -> int:
        """How many Mail Send requests ``send(batch)`` makes: what a rate in requests counts."""
        return len(self._requests(batch))

    def _requests(self, batch: list[OutboundMessage]) -> list[list[OutboundMessage]]:
        """Merged messages grouped by skeleton into requests of at most ``batch_size``, one
        personalization per address (SendGrid refuses an address twice in one request)."""
        requests: list[list[OutboundMessage]] = []
        open_requests: dict[tuple[str, ...], list[tuple[list[OutboundMessage], set[str]]]] = {}
        for message in batch:
            merge = message.merge
            if self.batch_size == 1 or merge is None or _substitution_bytes(message) > MAX_SUBSTITUTION_BYTES:
                requests.append([message])
                continue
            key = (merge.key, *message.categories)
            address = message.to.lower()
            candidates = open_requests.setdefault(key, [])
            target = next((r for r in candidates if address not in r[1] and len(r[0]) < self.batch_size),
                          None)
            if target is None:
                target = ([], set())
                candidates.append(target)
                requests.append(target[0])
            target[0].append(message)
            target[1].add(address)
        return requests

    def _send_request(self, sg: SendGridAPIClient, messages: list[OutboundMessage]) -> list[SendResult]:
        if len(messages) == 1 and messages[0].merge is None:
            return [self._send_one(sg, messages[0])]
        return self._send_merged(sg, messages)

    def _request_failed(self, messages: list[OutboundMessage], exc: Exception) -> list[SendResult]:
        log.error("sendgrid adapter failed on a request of %d message(s): %s", len(messages),
                  type(exc).__name__)
        return [transient(m, PROVIDER, f"adapter_error:{type(exc).__name__}") for m in messages]

    def merged_body(self, messages: list[OutboundMessage]) -> dict[str, Any]:
        """One Mail Send request for messages of the same merge: the skeleton once, a
        personalization per recipient with its subject, substitutions, message id and headers."""
        first = messages[0]
        assert first.merge is not None
        content = [{"type": "text/plain", "value": first.merge.text}]
        if first.merge.html:
            content.append({"type": "text/html", "value": first.merge.html})
        sender: dict[str, str] = {"email": self.from_email}
        if self.from_name:
            sender["name"] = self.from_name
        body: dict[str, Any] = {"from": sender, "content": content,
                                "personalizations": [_personalization(m) for m in messages]}
        if self.reply_to:
            body["reply_to"] = {"email": self.reply_to}
        if first.categories:
            body["categories"] = list(first.categories)
        if self.sandbox:
            body["mail_settings"] = {"sandbox_mode": {"enable": True}}
        return body

    def _send_merged(self, sg: SendGridAPIClient, messages: list[OutboundMessage]) -> list[SendResult]:
        good = [m for m in messages if "@" in m.to]
        results = [permanent(m, PROVIDER, PermanentReason.invalid_address, "not an email address")
                   for m in messages if "@" not in m.to]
        if not good:
            return results
        try:
            response = sg.send(self.merged_body(good))
        except SendGridHTTPError as exc:
            bad = _refused_recipients(exc, len(good)) if int(exc.status_code) == 400 else set()
            if bad:  # the request named the addresses it refused: the others go again without them
                rest = [m for i, m in enumerate(good) if i not in bad]
                refused = [_from_http_error(good[i], exc) for i in sorted(bad)]
                return results + refused + (self._send_merged(sg, rest) if rest else [])
            if int(exc.status_code) == 413 and len(good) > 1:  # too large: halve it
                half = len(good) // 2
                return results + self._send_merged(sg, good[:half]) + self._send_merged(sg, good[half:])
            return results + [_from_http_error(m, exc) for m in good]
        except OSError as exc:
            return results + [_unreached(m, exc) for m in good]
        raw = {"status_code": response.status_code, "headers": safe_headers(response.headers),
               "personalizations": len(good)}
        provider_id = header(response.headers, "X-Message-Id")
        return results + [accepted(m, PROVIDER, provider_id, raw) for m in good]

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
        except OSError as exc:
            return _unreached(message, exc)
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


def _unreached(message: OutboundMessage, exc: OSError) -> SendResult:
    """A timeout, or URLError, refused, reset: the request did not get an answer from SendGrid."""
    if isinstance(exc, TimeoutError):
        return transient(message, PROVIDER, "timeout")
    return transient(message, PROVIDER, f"connection_error:{type(exc).__name__}")


def _personalization(message: OutboundMessage) -> dict[str, Any]:
    assert message.merge is not None
    personalization: dict[str, Any] = {
        "to": [{"email": message.to}],
        "subject": message.subject or "",
        # Event webhooks echo custom_args back: this is how delivery events find their message.
        "custom_args": {"message_id": str(message.message_id)},
    }
    if message.merge.substitutions:
        personalization["substitutions"] = dict(message.merge.substitutions)
    headers = message.unsubscribe_headers()
    if headers:
        personalization["headers"] = headers
    return personalization


def _substitution_bytes(message: OutboundMessage) -> int:
    merge = message.merge
    if merge is None:
        return 0
    return len("".join(merge.substitutions).encode()) + len("".join(merge.substitutions.values()).encode())


_RECIPIENT_FIELD = re.compile(r"^personalizations\.(\d+)\.to\.\d+\.email$")


def _refused_recipients(exc: SendGridHTTPError, count: int) -> set[int]:
    """Indexes of the personalizations whose address a 400 names, when those are all it names."""
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    indexes = set()
    for error in _errors(body):
        match = _RECIPIENT_FIELD.match(str(error.get("field") or ""))
        if match is None or int(match.group(1)) >= count:
            return set()
        indexes.add(int(match.group(1)))
    return indexes


def _errors(body: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
