"""The one interface every channel adapter implements, and what a channel is.

A channel is data: an installed adapter declares it with a ``ChannelSpec`` (its
``channel_spec`` class attribute) and registers under the ``orchestrator.channels`` entry
points. Policy, templating, consent, segments, dispatch and the preference centre read the
channel set from there (``channels.channel_set``); the core names no channel of its own.

Writing an adapter (see README, "Write your own channel"):

- ``name`` (the entry-point name), ``channel`` (the channel it serves), ``provider``,
  ``limits: Limits`` and, if it introduces a channel, ``channel_spec: ChannelSpec``;
- ``send(batch)`` returns one ``SendResult`` per message, in order, and never raises for a
  provider error: ``Transient(reason, retry_after)`` means try again later,
  ``Permanent(reason)`` means this message to this address will never work (the policy may
  fall back to the topic's next channel); ``close()`` releases connections;
- the constructor takes keyword overrides (tests); it may accept ``channel`` and
  ``settings``, which the core passes only to adapters that declare them;
- ``configured()`` (optional, classmethod taking the core settings or nothing) says whether
  its credentials are set; unconfigured channels use the local outbox.

Adapters deliver; they never decide policy. Configuration problems raise
``ConfigurationError`` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable


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
    # The channel only takes pre-approved templates now (WhatsApp outside the 24-hour window,
    # Twilio 63016) and none fits this message: another channel may still reach the customer.
    outside_window = "outside_window"


@dataclass(frozen=True)
class Transient:
    reason: str
    retry_after: float | None = None  # seconds, from the provider's rate-limit headers


@dataclass(frozen=True)
class Permanent:
    reason: PermanentReason
    detail: str = ""
    # The provider's word for why the address is dead (Twilio 63003: "not_on_whatsapp"), the one its
    # late reports of the same refusal carry: an ``invalid_address`` is suppressed with it.
    suppress_reason: str | None = None


@dataclass(frozen=True)
class Merge:
    """What a merging provider needs: the shared skeleton and this recipient's tag values
    (``orchestrator.templating.merge`` builds them)."""

    key: str  # one per group: messages with the same key share ``text`` and ``html``
    text: str
    html: str | None
    substitutions: Mapping[str, str]


_C0_OR_SPACE = "".join(map(chr, range(0x21)))  # what urlsplit() strips from a link's start


def one_click_allowed(url: str | None) -> bool:
    """RFC 8058: one-click unsubscribe (``List-Unsubscribe-Post``) only with an HTTPS link."""
    if not url:
        return False
    # The scheme as urlsplit() reads it, without parsing the whole link of every message.
    scheme, colon, _ = str(url).lstrip(_C0_OR_SPACE).partition(":")
    return bool(colon) and scheme.lower() == "https"


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
    # What was rendered, for providers that send pre-approved templates instead of free text
    # (WhatsApp outside its 24-hour window): the message's template name, locale and data.
    template: str = ""
    locale: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    # Conversational channels: when the customer last wrote to us on this channel (UTC), if ever.
    last_inbound_at: datetime | None = None

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


def _mask_default(address: str) -> str:
    return address[:1] + "***" if address else ""


@dataclass(frozen=True)
class AddressKind:
    """How a customer is reached on a channel: one kind of address.

    ``normalise(raw, default_region)`` returns the stored form or raises ``ValueError`` with a
    reason that does not repeat the address (``default_region`` reads national phone numbers).
    ``mask`` shows an address in logs and terminal output without revealing it. Channels that
    share a kind (SMS and calls share ``phone``) share the customer's address.
    """

    name: str
    normalise: Callable[[str, str], str]
    mask: Callable[[str], str] = _mask_default
    description: str = ""  # for error messages and README tables, e.g. "an E.164 phone number"


@dataclass(frozen=True)
class ChannelSpec:
    """What the core knows about a channel; an adapter declares it as ``channel_spec``.

    - ``address``: the address kind customers are reached by;
    - ``cost``: relative cost of one message, breaks ties a topic ranks equally (the policy's
      ``channels.<name>.cost`` overrides it);
    - ``quiet_hours``: local ``("HH:MM", "HH:MM")`` applied when the policy names none for the
      channel, or ``None``;
    - ``variants``: template variant key -> {part role -> template file name}; roles are
      ``text`` (always), ``subject`` and ``html``. One variant named like the channel is the
      usual case (``{"whatsapp": {"text": "whatsapp.txt"}}``);
    - ``max_chars``: the longest rendered text a variant may have (``None``: no limit); built-in
      channels measure their own units (SMS segments, X weighted length) from tone_rules.yaml;
    - ``conversational``: replies come back on this channel;
    - ``opt_in_required``: only an opt-in recorded for this very channel allows messages (no
      record, or an opt-in for all channels, is not enough; WhatsApp's rule);
    - ``label``: what the preference centre and reports call it.
    """

    name: str
    address: AddressKind
    label: str = ""
    cost: float = 1.0
    quiet_hours: tuple[str, str] | None = None
    variants: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    max_chars: int | None = None
    conversational: bool = False
    opt_in_required: bool = False

    def __post_init__(self) -> None:
        if not self.variants:
            object.__setattr__(self, "variants", {self.name: {"text": f"{self.name}.txt"}})
        if not self.label:
            object.__setattr__(self, "label", self.name)
        for key, parts in self.variants.items():
            if key.split(":", 1)[0] != self.name or "text" not in parts:
                raise ValueError(f"channel {self.name}: variant {key!r} must be named "
                                 f"{self.name} or {self.name}:<kind> and have a 'text' part")


@runtime_checkable
class ChannelAdapter(Protocol):
    name: ClassVar[str]  # registry name, e.g. "sendgrid"
    channel: ClassVar[str]  # the ChannelSpec name it serves: "email", "sms", "whatsapp"...
    provider: ClassVar[str]
    limits: Limits
    # channel_spec: ClassVar[ChannelSpec], on adapters that introduce their channel

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
