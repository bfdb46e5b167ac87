"""Signing webhook requests the way SendGrid and Twilio do, for tests.

SendGrid: ECDSA P-256 / SHA-256 over ``timestamp + raw body``, base64 DER signature; the
verification key is the base64 DER SubjectPublicKeyInfo (what SendGrid's settings show).
Twilio: HMAC-SHA1 over the URL followed by the sorted form parameters, base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"


@dataclass
class SendGridSigner:
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SendGridSigner:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @cached_property
    def public_key(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def sign(self, body: bytes, timestamp: str) -> str:
        signature = self.private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(signature).decode()

    def request(self, events: list[dict[str, Any]] | bytes, timestamp: int | None = None
                ) -> tuple[bytes, dict[str, str]]:
        """(body, headers) of a signed Event Webhook POST."""
        body = events if isinstance(events, bytes) else json.dumps(events).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return body, {SENDGRID_SIGNATURE: self.sign(body, ts), SENDGRID_TIMESTAMP: ts,
                      "Content-Type": "application/json"}


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    return RequestValidator(auth_token).compute_signature(url, params)


def twilio_headers(auth_token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    return {TWILIO_SIGNATURE: twilio_signature(auth_token, url, params)}


def sendgrid_event(event: str, message_id: int | None = None, email: str = "ada@example.com",
                   event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """One event as SendGrid sends it, our custom_args merged in."""
    data: dict[str, Any] = {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": event_id or f"evt-{event}-{message_id}",
        "sg_message_id": "sgmsg.filter0001",
        **extra,
    }
    if message_id is not None:
        data["message_id"] = str(message_id)
    return data


TWILIO_ACCOUNT_SID = "AC" + "0" * 32


def twilio_sid(tag: str, prefix: str = "SM") -> str:
    """A well-formed Twilio id (two capital letters, 32 hex digits) standing for ``tag``: the same
    tag gives the same id; an id that is already well-formed stays as it is."""
    if re.fullmatch(r"[A-Z]{2}[0-9a-f]{32}", tag):
        return tag
    return prefix + hashlib.md5(tag.encode()).hexdigest()
