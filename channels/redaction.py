"""Masking of email addresses, phone numbers and HTTP credentials in free text.

It sits at the bottom of the layers because both sides need it: adapters mask the provider
error texts they put in results (providers echo the address), and the core masks logs,
artifacts and terminal output (``orchestrator.privacy``).
"""

from __future__ import annotations

import re

# A character of an address: letters, digits and marks of any script (internationalised
# addresses, RFC 6531, and IDN domains), not ASCII punctuation, spaces or punctuation blocks.
_ADDRESS_CHAR = (
    r"[^\s\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f\u00a0-\u00bf\u2000-\u206f"
    r"\u3000-\u3003\u3008-\u3011\uff01-\uff0f\uff1a-\uff20]"
)
_LOCAL = rf"(?:{_ADDRESS_CHAR}|[_.+'-])"
_LABEL = rf"(?:{_ADDRESS_CHAR}|-)"
_DOT = r"[.\u3002\uff0e\uff61]"  # IDNA reads the ideographic and fullwidth full stops as dots
EMAIL_RE = re.compile(rf"(?<!{_LOCAL})({_LOCAL}){_LOCAL}*@({_LABEL}){_LABEL}*(?:{_DOT}{_LABEL}+)+")
# Ten or more digits and phone punctuation. Digits that continue an identifier (a letter, digit
# or ``_`` before them, or one joined by ``-`` or ``.`` as in ``run-20261130-085446``) are not a
# phone number, unless they start with ``+``.
PHONE_RE = re.compile(r"(?<![\w+(])(?:(\+)|(?<!\w[-.]))\(?\d[\d ().-]{8,}\d(?!\w|-\w)")
_DECIMAL_RE = re.compile(r"\d+\.\d+")
# Date and time stamps (20261130-085446, 20261130T0854, 20261130085446) are not phone numbers.
_TIMESTAMP_RE = re.compile(
    r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"(?:[-_T ](?:[01]\d|2[0-3])[0-5]\d(?:[0-5]\d)?|(?:[01]\d|2[0-3])[0-5]\d[0-5]\d)"
)
# A date as ISO 8601 writes it, perhaps with the hour that follows (2026-11-30 08 of "2026-11-30 08:00").
_DATE_RE = re.compile(r"\(?(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?:[ T](?:[01]\d|2[0-3]))?")
# Credentials after an HTTP auth scheme, as SDKs print request headers at DEBUG level.
CREDENTIAL_RE = re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]{16,}")



def redact_text(text: str) -> str:
    """Masks every email address, phone-number-like run of digits and HTTP credential in free text."""
    text = CREDENTIAL_RE.sub(lambda m: f"{m.group(1)} ***", text)
    text = EMAIL_RE.sub(_mask_email_match, text)
    return PHONE_RE.sub(_mask_phone_match, text)


def _mask_email_match(match: re.Match[str]) -> str:
    if match.group(0).rsplit(".", 1)[-1].isdigit():  # user@10.0.0.1, pkg@1.2.3: no domain name
        return match.group(0)
    return f"{match.group(1)}***@{match.group(2)}***"


def _mask_phone_match(match: re.Match[str]) -> str:
    span = match.group(0)
    digits = [c for c in span if c.isdigit()]
    if match.group(1) is None and (
        len(digits) < 8 or _TIMESTAMP_RE.fullmatch(span) or _DATE_RE.fullmatch(span)
        or _DECIMAL_RE.fullmatch(span)
    ):
        return span
    return "+***" + "".join(digits[-2:])
