"""What providers report back, in provider-neutral terms.

Each provider's webhook module (``channels/<provider>/webhook.py``) parses its own request
bodies into these types; the core (``orchestrator.inbound``) applies them to the ledger,
consent and suppressions without ever seeing a provider's event names, statuses or error codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from channels.base import PermanentReason

# ProviderEvent.opt_out_topic: every topic on the event's channel (consent's wildcard), or the
# topic of the message the event is about.
ALL_TOPICS = "*"
MESSAGE_TOPIC = "message"
# The suppression reason for an address whose owner told us (or the provider) to stop: an SMS
# STOP. Only an opt-in from that address lifts it; other suppressions (dead numbers) stay.
OPTED_OUT = "unsubscribed"

# What a keyword reply asks for.
SmsKeyword = Literal["opt_out", "opt_in", "help"]


class DeliveryStatus(StrEnum):
    """How far along a message an event proves it is (values as the ledger's statuses)."""

    sent = "sent"  # the provider has it
    delivered = "delivered"
    failed = "failed"  # refused, undeliverable or cancelled: the address may still work
    bounced = "bounced"  # the address does not exist


class EventKind(StrEnum):
    """What a delivery event means, in provider-neutral words: what reports count."""

    sent = "sent"  # the provider has it (SendGrid processed, Twilio queued/sent)
    deferred = "deferred"  # the provider retries later
    delivered = "delivered"
    open = "open"  # opened by a person, as far as anyone can tell
    machine_open = "machine_open"  # opened by a privacy proxy (SendGrid sg_machine_open): no signal
    click = "click"
    bounce = "bounce"  # the address does not exist
    blocked = "blocked"  # refused for now (reputation, policy)
    dropped = "dropped"  # the provider would not send it
    spam_report = "spam_report"
    unsubscribe = "unsubscribe"  # provider unsubscribe or our one-click link, from this message
    failed = "failed"  # SMS undelivered or failed
    inbound = "inbound"  # a message the customer sent us
    other = "other"


@dataclass
class ProviderEvent:
    """One delivery event in provider-neutral terms."""

    provider: str
    channel: str  # the channel the provider carried the message on
    event_id: str  # unique per provider: the idempotence key
    event_type: str
    payload: dict[str, Any]
    kind: EventKind = EventKind.other  # what it means, for reports
    message_id: int | None = None  # our ledger id, carried through the provider call
    provider_message_id: str | None = None  # fallback match on the ledger's provider message id
    status: DeliveryStatus | None = None  # the status this event implies
    occurred_at: datetime | None = None
    address: str | None = None
    suppress_reason: str | None = None  # the address is dead: never use it again
    # A late refusal (a failure reported after the provider accepted the message) in the terms of
    # a refused send: the policy treats it as that ``Permanent`` and may fall back.
    permanent: PermanentReason | None = None
    opt_out_topic: str | None = None  # ALL_TOPICS or MESSAGE_TOPIC
    error: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message a customer sent us (an SMS reply, an email reply)."""

    provider: str
    channel: str
    message_id: str  # the provider's id for it: the idempotence key
    sender: str
    body: str
    keyword: SmsKeyword | None = None  # the provider already recognised the body as a keyword
    subject: str | None = None  # an email's
    automatic: bool = False  # sent by a machine (an out-of-office reply), not by the customer


def parse_message_id(value: Any) -> int | None:
    """Our ledger id as a provider echoes it back (a string in custom args or a query)."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None  # ledger ids are 32-bit integers
