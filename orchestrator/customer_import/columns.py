"""The columns a customer file may have, and which of them the import ignores (and why)."""

from __future__ import annotations

from functools import lru_cache

from channels.channel_set import channel_names
from orchestrator import validation
from orchestrator.consent import ANY

PROFILE_COLUMNS = (
    "name", "email", "phone", "x_user_id", "x_handle", "timezone", "locale", "tier", "customer_since",
)  # fmt: skip
CONSENT_COLUMNS: dict[str, tuple[str, str]] = {
    "email_opt_in": ("email", ANY),
    "sms_opt_in": ("sms", ANY),
    "social_opt_in": ("social", ANY),
    "phone_opt_in": ("phone", ANY),
    "marketing_opt_in": (ANY, "marketing"),
}
PREFERENCE_COLUMNS = ("preferred_channels", "frequency", "quiet_start", "quiet_end", "do_not_contact")
KNOWN_COLUMNS = frozenset(
    {"external_id", "country", "attributes", *PROFILE_COLUMNS, *CONSENT_COLUMNS, *PREFERENCE_COLUMNS}
)
ATTR_PREFIX = "attr."
CONTACT_PREFIX = "contact."
OPT_IN_SUFFIX = "_opt_in"


def column_name(raw: str) -> str:
    name = raw.strip()
    return name if name.lower().startswith(ATTR_PREFIX) and len(name) > len(ATTR_PREFIX) else name.lower()


@lru_cache(maxsize=4096)
def unknown_column(name: str) -> str | None:
    """Why a column is not imported, or None when it is one we know."""
    if name in KNOWN_COLUMNS:
        return None
    if name.startswith(CONTACT_PREFIX):
        channel = name[len(CONTACT_PREFIX) :]
        return None if channel in channel_names() else f"no installed channel {channel!r}"
    if name.endswith(OPT_IN_SUFFIX) and name[: -len(OPT_IN_SUFFIX)] in channel_names():
        return None
    if name.lower().startswith(ATTR_PREFIX):
        key = name[len(ATTR_PREFIX) :]
        return None if validation.ATTRIBUTE_KEY_RE.match(key) else "attribute keys use letters, digits, _"
    return "unknown"
