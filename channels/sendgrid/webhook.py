"""SendGrid's Event Webhook: its signature check and its events, mapped onto ``ProviderEvent``.

The web app (``orchestrator.web.sendgrid_events``) verifies and parses with these functions and
hands the neutral events to the core; SendGrid's event names stop here.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook

from channels.base import ConfigurationError
from channels.events import (
    ALL_TOPICS,
    MESSAGE_TOPIC,
    DeliveryStatus,
    EventKind,
    ProviderEvent,
    parse_message_id,
)

PROVIDER = "sendgrid"
CHANNEL = "email"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# SendGrid's "dropped" reasons that mean the address itself is bad.
_DROPPED_SUPPRESS = {
    "bounced address": "bounce",
    "spam reporting address": "spamreport",
    "invalid": "invalid",
}
_DROPPED_OPT_OUT = "unsubscribed address"
_KIND = {
    "processed": EventKind.sent, "deferred": EventKind.deferred, "delivered": EventKind.delivered,
    "open": EventKind.open, "click": EventKind.click, "bounce": EventKind.bounce,
    "dropped": EventKind.dropped, "spamreport": EventKind.spam_report,
    "unsubscribe": EventKind.unsubscribe, "group_unsubscribe": EventKind.unsubscribe,
}


def signature_valid(public_key: str, raw_body: bytes, signature: str, timestamp: str) -> bool:
    """True when ``signature`` is SendGrid's ECDSA signature over ``timestamp`` + the raw body.

    ``public_key`` is the verification key from SendGrid's Mail Settings (base64 DER, no PEM
    armour). The body must be the exact bytes received: re-serialised JSON does not verify.
    """
    try:
        verifier = EventWebhook(public_key)
    except ValueError as exc:
        raise ConfigurationError("the SendGrid webhook verification key is not a valid public key") from exc
    try:
        payload = raw_body.decode("utf-8")
        return bool(verifier.verify_signature(payload, signature, timestamp))
    except (UnicodeDecodeError, binascii.Error, ValueError):
        return False  # not UTF-8, or a signature that is not base64 / not DER


def parse_events(raw_body: bytes) -> list[ProviderEvent]:
    """A batch of events; raises ValueError when the body is not a JSON list of events."""
    batch = json.loads(raw_body)
    if not isinstance(batch, list):
        raise ValueError("the body must be a JSON list of events")
    return [parse_event(item) for item in batch]


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_event(raw: Mapping[str, Any]) -> ProviderEvent:
    """Maps one SendGrid Event Webhook event; raises ValueError when it is not an event."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("event"), str):
        raise ValueError("each event must be an object with an 'event' field")
    kind = raw["event"]
    event_id = raw.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        # Always present in real events; without it the content itself is the identity.
        event_id = "sha256:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    sg_message_id = raw.get("sg_message_id")
    event = ProviderEvent(
        provider=PROVIDER,
        channel=CHANNEL,
        event_id=event_id[:200],
        event_type=kind[:32],
        payload=dict(raw),
        message_id=parse_message_id(raw.get("message_id")),
        # sg_message_id is the X-Message-Id of the send plus a ".filter..." suffix
        provider_message_id=sg_message_id.split(".", 1)[0] if isinstance(sg_message_id, str) else None,
        occurred_at=_epoch(raw.get("timestamp")),
        address=raw.get("email") if isinstance(raw.get("email"), str) else None,
    )
    event.kind = _KIND.get(kind, EventKind.other)
    if kind == "open" and raw.get("sg_machine_open") is True:
        event.kind = EventKind.machine_open
    reason = str(raw.get("reason") or raw.get("response") or "")
    if kind in ("processed", "deferred"):
        event.status = DeliveryStatus.sent
    elif kind in ("delivered", "open", "click"):  # an open or a click proves delivery
        event.status = DeliveryStatus.delivered
    elif kind == "bounce":
        if raw.get("type") == "blocked":  # refused for now (reputation, policy): not a dead address
            event.status, event.error = DeliveryStatus.failed, f"blocked: {reason}"
            event.kind = EventKind.blocked
        else:
            event.status, event.error = DeliveryStatus.bounced, f"bounce: {reason}"
            event.suppress_reason = "bounce"
    elif kind == "dropped":
        event.status, event.error = DeliveryStatus.failed, f"dropped: {reason}"
        event.suppress_reason = _DROPPED_SUPPRESS.get(reason.strip().lower())
        if reason.strip().lower() == _DROPPED_OPT_OUT:
            event.opt_out_topic = ALL_TOPICS
    elif kind == "spamreport":
        event.suppress_reason = "spamreport"
    elif kind == "unsubscribe":
        event.opt_out_topic = ALL_TOPICS
    elif kind == "group_unsubscribe":
        # The kind of message they unsubscribed from; without the message, everything on email.
        event.opt_out_topic = MESSAGE_TOPIC
    return event
