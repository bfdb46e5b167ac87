"""Masking of personal data and secrets for logs, artifacts and terminal output."""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url

EMAIL_RE = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-])[\w.-]*\.([a-zA-Z]{2,})\b")
PHONE_RE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{6,}\d(\d{2})\b")
# Credentials after an HTTP auth scheme, as SDKs print request headers at DEBUG level.
CREDENTIAL_RE = re.compile(r"\b(Bearer|Basic)\s+[\w.~+/=-]{16,}")


def mask_email(email: str | None) -> str:
    if not email or "@" not in email:
        return "" if not email else "***"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = [c for c in phone if c.isdigit()]
    return "+***" + "".join(digits[-2:]) if len(digits) > 2 else "***"


def mask_address(channel: str, address: str | None) -> str:
    if channel == "email":
        return mask_email(address)
    if channel in ("sms", "phone"):
        return mask_phone(address)
    return address or ""


def redact_text(text: str) -> str:
    """Masks every email address, phone-number-like run of digits and HTTP credential in free text."""
    text = CREDENTIAL_RE.sub(lambda m: f"{m.group(1)} ***", text)
    text = EMAIL_RE.sub(lambda m: f"{m.group(1)}***@{m.group(2)}***", text)
    return PHONE_RE.sub(lambda m: "+***" + m.group(1), text)


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
