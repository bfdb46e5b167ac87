"""Twilio's error codes (https://www.twilio.com/docs/api/errors), in one table.

Each code says how a send that Twilio refused with it ends (the adapter), and whether a status
callback carrying it means the number is dead for us (the webhook: suppressed with that reason).
Codes not suppressed may work another time: 30003 handset off, 30007 carrier filtering of
content, 30008 unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.base import PermanentReason
from channels.events import OPTED_OUT


@dataclass(frozen=True)
class TwilioError:
    send: PermanentReason | None  # a refused send; None: rate limited, try again later
    suppress: str | None = None  # in a status callback: the number will never work, suppress it


_INVALID = TwilioError(PermanentReason.invalid_address)  # invalid 'To' number
_BLOCKED = TwilioError(PermanentReason.blocked)  # unreachable, not mobile, spam
_TOO_LONG = TwilioError(PermanentReason.too_long)
_UNAUTHORIZED = TwilioError(PermanentReason.unauthorized)  # auth, suspended account, From not ours
_RATE_LIMITED = TwilioError(None)

ERRORS: dict[int, TwilioError] = {
    14107: _RATE_LIMITED,
    20003: _UNAUTHORIZED,
    20005: _UNAUTHORIZED,
    20429: _RATE_LIMITED,
    21211: TwilioError(PermanentReason.invalid_address, "invalid_number"),
    21217: _INVALID,
    21401: _INVALID,
    21407: _INVALID,
    21408: _BLOCKED,
    21421: _INVALID,
    21606: _UNAUTHORIZED,
    21610: TwilioError(PermanentReason.unsubscribed, OPTED_OUT),  # the recipient replied STOP to our sender
    21612: _BLOCKED,
    21614: TwilioError(PermanentReason.blocked, "not_mobile"),
    21617: _TOO_LONG,
    21659: _UNAUTHORIZED,
    30003: _BLOCKED,
    30004: TwilioError(PermanentReason.blocked, "blocked"),  # blocked by the recipient or the carrier
    30005: TwilioError(PermanentReason.blocked, "unknown_number"),
    30006: TwilioError(PermanentReason.blocked, "landline_or_unreachable_carrier"),
    30007: _BLOCKED,
    30019: _TOO_LONG,
}

# Status callbacks carry the code as text.
_BY_TEXT = {str(code): error for code, error in ERRORS.items()}


def dead_number_reason(code: str) -> str | None:
    """The suppression reason when a status callback reports ``code``; None when the number may work."""
    error = _BY_TEXT.get(code)
    return error.suppress if error else None
