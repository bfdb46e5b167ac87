"""Provider webhook signatures and the TwiML reply, behind plain functions.

The web app lives in the core, which imports no provider SDK; it calls these functions
with plain strings and bytes instead.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable

from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from channels.base import ConfigurationError


def sendgrid_signature_valid(public_key: str, raw_body: bytes, signature: str, timestamp: str) -> bool:
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


def twilio_signature_valid(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    """True when ``signature`` (X-Twilio-Signature) signs the public ``url`` and the form params."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, _Params(params), signature))


def twiml_reply(text: str | None = None) -> str:
    """A TwiML messaging response: one reply message, or none at all."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)
