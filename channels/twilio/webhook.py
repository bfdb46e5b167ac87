"""Twilio's webhooks: the signature check, status callbacks mapped onto ``ProviderEvent``,
inbound messages onto ``InboundMessage``, and the TwiML reply.

The web app (``orchestrator.web.twilio_callbacks``) verifies and parses with these functions and
hands the neutral types to the core; Twilio's statuses and parameters stop here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.events import (
    ALL_TOPICS,
    OPTED_OUT,
    DeliveryStatus,
    EventKind,
    InboundMessage,
    ProviderEvent,
    SmsKeyword,
    parse_message_id,
)
from channels.twilio.errors import known_error

PROVIDER = "twilio"
CHANNEL = "sms"
# Twilio carries WhatsApp through the same Messages API and webhooks; its addresses say which.
WHATSAPP = "whatsapp"
WHATSAPP_PREFIX = "whatsapp:"
SIGNATURE_HEADER = "X-Twilio-Signature"

_STATUS = {
    "accepted": DeliveryStatus.sent,
    "scheduled": DeliveryStatus.sent,
    "queued": DeliveryStatus.sent,
    "sending": DeliveryStatus.sent,
    "sent": DeliveryStatus.sent,
    "delivered": DeliveryStatus.delivered,
    "read": DeliveryStatus.delivered,
    "undelivered": DeliveryStatus.failed,
    "failed": DeliveryStatus.failed,
    "canceled": DeliveryStatus.failed,
}

_KIND = {DeliveryStatus.sent: EventKind.sent, DeliveryStatus.delivered: EventKind.delivered,
         DeliveryStatus.failed: EventKind.failed}

# Twilio's Advanced Opt-Out names the keyword class it recognised (including custom keywords
# configured on the Messaging Service) in the OptOutType parameter.
_OPT_OUT_TYPES: dict[str, SmsKeyword] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


class _Params:
    """The multi-valued view of form parameters that RequestValidator reads."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def __iter__(self):
        return iter(self._values)

    def getlist(self, key: str) -> list[str]:
        return self._values[key]


def channel_of(address: str) -> str:
    """``whatsapp`` for Twilio's ``whatsapp:+E164`` addresses, else SMS."""
    return WHATSAPP if address.strip().startswith(WHATSAPP_PREFIX) else CHANNEL


def signature_valid(auth_token: str, url: str, params: Iterable[tuple[str, str]] | str,
                    signature: str) -> bool:
    """True when ``signature`` (X-Twilio-Signature) signs the public ``url`` and the form params.

    ``params`` as a string is a JSON body: Twilio then signs the URL alone and puts the body's
    SHA-256 in the URL's ``bodySHA256``, which must be there and match.
    """
    if not signature:
        return False
    if isinstance(params, str):
        if "bodySHA256" not in parse_qs(urlsplit(url).query):
            return False  # the signature would cover the URL only, not the body
        return bool(RequestValidator(auth_token).validate(url, params, signature))
    return bool(RequestValidator(auth_token).validate(url, _Params(params), signature))


# Twilio's ids: two capital letters (SM, MM, AC, MG...) and 32 hex digits.
SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")


def check_sids(params: Mapping[str, str], account_sid: str | None = None) -> None:
    """Every ``...Sid`` parameter (MessageSid, SmsSid, AccountSid...) is a well-formed id, and the
    account is ours when we know it. A valid signature does not vouch for this: Twilio signs keys
    and values joined without separators, so ``MessageSid=SMx`` + ``NumMedia=0`` signs like
    ``MessageSid=SMxNumMedia0``. Raises ValueError naming the parameter."""
    for key, value in params.items():
        if key.endswith("Sid") and value and not SID.fullmatch(value):
            raise ValueError(f"{key} is not a Twilio id (two capital letters and 32 hex digits)")
    if account_sid and params.get("AccountSid") != account_sid:
        raise ValueError("AccountSid is not this account's")


def status_event(params: Mapping[str, str], message_id: str | None) -> ProviderEvent:
    """Maps a message status callback; raises ValueError when fields are missing."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise ValueError("MessageSid and MessageStatus are required")
    delivery = _STATUS.get(status)
    event = ProviderEvent(
        provider=PROVIDER,
        channel=channel_of(params.get("To") or ""),
        event_id=f"{sid}:{status}"[:200],
        event_type=status[:32],
        payload=dict(params),
        message_id=parse_message_id(message_id),
        provider_message_id=sid,
        status=delivery,
        kind=_KIND[delivery] if delivery else EventKind.other,
        occurred_at=None,
        address=params.get("To") or None,
    )
    code = (params.get("ErrorCode") or "").strip()
    if code and event.status is DeliveryStatus.failed:
        event.error = f"twilio {status}: error {code}"
        known = known_error(code)
        if known is not None:
            event.permanent, event.suppress_reason = known.reason, known.suppress
        if event.suppress_reason == OPTED_OUT:
            event.opt_out_topic = ALL_TOPICS
    return event


def inbound_message(params: Mapping[str, str]) -> InboundMessage:
    """Maps an incoming message; raises ValueError when fields are missing."""
    sender, sid = params.get("From", "").strip(), params.get("MessageSid") or params.get("SmsSid") or ""
    if not sender or not sid or "Body" not in params:
        raise ValueError("From, Body and MessageSid are required")
    opt_out_type = (params.get("OptOutType") or "").strip().upper()
    return InboundMessage(provider=PROVIDER, channel=channel_of(sender), message_id=sid, sender=sender,
                          body=params["Body"], keyword=_OPT_OUT_TYPES.get(opt_out_type))


def twiml_reply(text: str | None = None) -> str:
    """A TwiML messaging response: one reply message, or none at all."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
