"""Masking of personal data and secrets for logs, artifacts and terminal output.

Free-text redaction (``redact_text``) lives in ``channels.redaction``, below the core, because
adapters mask provider error texts with it too.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from channels.redaction import redact_text

__all__ = ["mask_address", "mask_email", "mask_phone", "redact_text", "redact_url"]


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


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
