"""SendGrid's Inbound Parse webhook: an email a customer sent us (a reply), as an ``InboundMessage``.

SendGrid posts each email it receives for the parse domain as a multipart form: ``from``, ``to``,
``subject``, ``text``, ``html``, ``headers`` (the raw header block), ``envelope`` (JSON with the SMTP
sender and recipients) and attachments. It does not sign the request: the URL carries a password
(``https://inbound:<ORCH_SENDGRID_INBOUND_TOKEN>@host/webhooks/sendgrid/inbound``), which arrives as
HTTP Basic authentication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
from collections.abc import Mapping
from email.message import Message
from email.parser import HeaderParser
from email.utils import parseaddr

from channels.events import InboundMessage

PROVIDER = "sendgrid"
CHANNEL = "email"
_TAGS = re.compile(r"<[^>]+>")


def password_valid(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization: Basic ...`` header carries ``token`` as its password."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(decoded.partition(":")[2].encode(), token.encode())


def _automatic(headers: Message) -> bool:
    """RFC 3834's Auto-Submitted, and the headers other auto-responders set (names in any case)."""
    submitted = headers.get("Auto-Submitted", "no").strip().lower()
    precedence = headers.get("Precedence", "").strip().lower()
    return (submitted not in ("", "no") or precedence in ("auto_reply", "bulk", "junk", "list")
            or any(name in headers for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")))


def parse_inbound(fields: Mapping[str, str]) -> InboundMessage:
    """The email in SendGrid's form fields; ``ValueError`` when there is no sender address."""
    headers = HeaderParser().parsestr(fields.get("headers", ""), headersonly=True)
    sender = ""
    try:
        envelope = json.loads(fields.get("envelope") or "{}")
        sender = str(envelope.get("from") or "") if isinstance(envelope, dict) else ""
    except ValueError:
        pass
    sender = (sender or parseaddr(fields.get("from", ""))[1]).strip()
    if "@" not in sender:
        raise ValueError("the email has no sender address")
    subject = fields.get("subject", "").strip()
    body = fields.get("text", "")
    if not body.strip() and fields.get("html"):
        body = html.unescape(_TAGS.sub(" ", fields["html"]))
    # The Message-ID makes a retried post the same message; without one, the content does.
    message_id = (headers.get("Message-ID") or "").strip() or hashlib.sha256(
        "\n".join((sender, subject, body)).encode("utf-8", "surrogatepass")).hexdigest()
    return InboundMessage(provider=PROVIDER, channel=CHANNEL, message_id=message_id[:150], sender=sender,
                          body=body, subject=subject, automatic=_automatic(headers))
