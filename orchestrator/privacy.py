"""Masking of personal data and secrets for logs, artifacts and terminal output.

Free-text redaction (``redact_text``) lives in ``channels.redaction``, below the core, because
adapters mask provider error texts with it too.
"""

from __future__ import annotations

from channels.addresses import mask_email, mask_phone
from channels.redaction import redact_text

__all__ = ["mask_address", "mask_email", "mask_phone", "redact_text", "redact_url"]


def mask_address(channel: str, address: str | None) -> str:
    """``address`` as its channel's address kind shows it in logs (an unknown channel: first letter)."""
    if not address:
        return ""
    from channels.channel_set import installed_channels  # the channel set loads adapters: late

    spec = installed_channels().get(channel)
    try:
        return spec.address.mask(address) if spec is not None else address[:1] + "***"
    except ValueError:  # an address its kind cannot read: show no more of it than of any other
        return address[:1] + "***"


def redact_url(url: str) -> str:
    from sqlalchemy.engine import make_url  # late: commands that never print a URL start faster

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"
