"""The one interface every channel adapter implements.

Adapters deliver; they never decide policy. They turn every provider outcome into a
``SendResult`` whose ``error`` is ``None``, ``Transient`` (try again, maybe after
``retry_after`` seconds) or ``Permanent`` (this message to this address will never work).
Configuration problems raise ``ConfigurationError`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit


class ConfigurationError(RuntimeError):
    """Missing or invalid credentials or settings for an adapter."""


class ResultStatus(StrEnum):
    accepted = "accepted"  # the provider took the message (SendGrid 202, Twilio queued...)
    transient = "transient"  # not sent; try again later
    permanent = "permanent"  # not sent; will never work as it is


class PermanentReason(StrEnum):
    invalid_address = "invalid_address"
    unsubscribed = "unsubscribed"  # the provider says the recipient opted out (Twilio 21610)
    blocked = "blocked"  # spam report, block list, not a mobile number...
    rejected = "rejected"  # content or request refused (4xx other than the above)
    unauthorized = "unauthorized"  # bad credentials: fix the configuration, then retry
    too_long = "too_long"


@dataclass(frozen=True)
class Transient:
    reason: str
    retry_after: float | None = None  # seconds, from the provider's rate-limit headers


@dataclass(frozen=True)
class Permanent:
    reason: PermanentReason
    detail: str = ""


@dataclass(frozen=True)
class Merge:
    """What a merging provider needs: the shared skeleton and this recipient's tag values
    (``orchestrator.templating.merge`` builds them)."""

    key: str  # one per group: messages with the same key share ``text`` and ``html``
    text: str
    html: str | None
    substitutions: Mapping[str, str]


def one_click_allowed(url: str | None) -> bool:
    """RFC 8058: one-click unsubscribe (``List-Unsubscribe-Post``) only with an HTTPS link."""
    return bool(url) and urlsplit(str(url)).scheme.lower() == "https"


@dataclass
class OutboundMessage:
    """A rendered message ready for one recipient on one channel."""

    message_id: int  # our ledger id; travels with the provider call
    channel: str
    to: str  # email address, E.164 phone, X user id, or customer id for phone tasks
    body: str  # plain text (email text part, SMS body, DM text, call script)
    subject: str | None = None
    html: str | None = None
    topic: str = ""
    marketing: bool = False  # adds List-Unsubscribe headers, compliance footers are in the body
    unsubscribe_url: str | None = None
    customer_id: int | None = None
    priority: int = 0
    due_in_seconds: int | None = None  # phone tasks: SLA
    categories: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    # Set when the body came from a mail merge: the shared skeleton and this recipient's values.
    # Providers that merge on their side send the skeleton once for many recipients.
    merge: Merge | None = None

    def unsubscribe_headers(self) -> dict[str, str]:
        """The List-Unsubscribe headers of a marketing email (RFC 2369), with one-click
        unsubscribe (RFC 8058) only when the link is HTTPS, as that RFC requires."""
        if not (self.marketing and self.unsubscribe_url):
            return {}
        headers = {"List-Unsubscribe": f"<{self.unsubscribe_url}>"}
        if one_click_allowed(self.unsubscribe_url):
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        return headers


@dataclass
class SendResult:
    message_id: int
    status: ResultStatus
    provider: str
    provider_message_id: str | None = None
    error: Transient | Permanent | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # status code, headers, body (no secrets)

    @property
    def ok(self) -> bool:
        return self.status is ResultStatus.accepted


@dataclass(frozen=True)
class Limits:
    max_batch: int = 100  # messages per send() call
    # The provider's default send rate (the policy's ``rates:`` may override it), in ``rate_unit``:
    # "messages", or "requests" when one provider call carries several messages (an adapter that
    # merges says how many calls a batch takes with ``requests_for(batch) -> int``).
    rate_per_second: float | None = None
    rate_unit: Literal["messages", "requests"] = "messages"


@runtime_checkable
class ChannelAdapter(Protocol):
    name: ClassVar[str]  # registry name, e.g. "sendgrid"
    channel: ClassVar[str]  # "email", "sms", "social", "phone"
    provider: ClassVar[str]
    limits: Limits

    def send(self, batch: list[OutboundMessage]) -> list[SendResult]:
        """Sends each message once; one result per message, in order. Never raises for
        provider errors (they become results); raises ConfigurationError for bad set-up."""
        ...

    def close(self) -> None: ...


@dataclass
class BroadcastResult:
    provider: str
    provider_post_id: str | None
    error: Transient | Permanent | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class BroadcastAdapter(Protocol):
    """Channels that can publish one public post for everyone (X): an outage update is one post."""

    def broadcast(self, text: str, dedupe_key: str) -> BroadcastResult: ...
