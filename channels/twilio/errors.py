"""Twilio's error codes (https://www.twilio.com/docs/api/errors), in one table for SMS and WhatsApp.

Twilio numbers its errors in one space whatever the channel, and carries WhatsApp through the
same Messages API and status callbacks as SMS, so both adapters (``channels.twilio.adapter``,
``channels.whatsapp.adapter``) and the status-callback parser (``channels.twilio.webhook``) read
this one table. Each code says:

- ``reason``: how a message Twilio refused with it ends, whether the refusal came at once (the
  send request) or late (a status callback ``failed``/``undelivered`` with ``ErrorCode``); None
  means rate limited, try again later. A late refusal is as final as an immediate one, so the
  policy may fall back to the topic's next channel either way;
- ``suppress``: in a status callback, the address will never work on that channel: it is
  suppressed with this reason, so later messages go straight to the next channel. An invalid
  address refused at once is suppressed with the same word (``Permanent.suppress_reason``).

Codes not suppressed may work another time: 30003 handset off, 30007 carrier filtering of
content, 30008 unknown; 63016 (the WhatsApp window is closed) until the customer writes; 63024
(recipient cannot receive this message) and 63032 or 63049 (Meta holds back marketing messages)
for another message.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.base import PermanentReason
from channels.events import OPTED_OUT


@dataclass(frozen=True)
class TwilioError:
    reason: PermanentReason | None  # how a refused message ends; None: rate limited, try again later
    suppress: str | None = None  # in a status callback: the address will never work, suppress it


_INVALID = TwilioError(PermanentReason.invalid_address)  # invalid 'To' number
_BLOCKED = TwilioError(PermanentReason.blocked)  # unreachable, not mobile, spam
_TOO_LONG = TwilioError(PermanentReason.too_long)
_UNAUTHORIZED = TwilioError(PermanentReason.unauthorized)  # auth, suspended account, From not ours
_TEMPLATE = TwilioError(PermanentReason.rejected)  # a WhatsApp Content template Twilio would not use
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
    21656: _TEMPLATE,  # ContentVariables invalid
    21659: _UNAUTHORIZED,
    30003: _BLOCKED,
    30004: TwilioError(PermanentReason.blocked, "blocked"),  # blocked by the recipient or the carrier
    30005: TwilioError(PermanentReason.blocked, "unknown_number"),
    30006: TwilioError(PermanentReason.blocked, "landline_or_unreachable_carrier"),
    30007: _BLOCKED,
    30019: _TOO_LONG,
    # WhatsApp (https://www.twilio.com/docs/whatsapp/api/error-code-mapping)
    63001: _UNAUTHORIZED,  # the channel could not authenticate the request
    63003: TwilioError(PermanentReason.invalid_address, "not_on_whatsapp"),  # To is not a WhatsApp user
    63007: _UNAUTHORIZED,  # From is not a WhatsApp sender of ours
    63014: _BLOCKED,  # the recipient blocked us on WhatsApp
    63016: TwilioError(PermanentReason.outside_window),  # free-form text outside the 24-hour window
    63018: _RATE_LIMITED,
    63024: _BLOCKED,  # the recipient cannot receive this message (an old app, an unsupported type)
    63027: _TEMPLATE,  # no template for the language and locale
    63028: _TEMPLATE,  # the template's parameters do not match
    63030: _BLOCKED,  # unsupported parameter for WhatsApp messages
    63032: _BLOCKED,  # Meta holds the number back from marketing messages (an experiment)
    63049: _BLOCKED,  # Meta chose not to deliver this marketing message
}


def known_error(code: int | str | None) -> TwilioError | None:
    """The table's entry for ``code`` (status callbacks carry it as text); None when unknown."""
    try:
        return ERRORS.get(int(str(code).strip())) if code not in (None, "") else None
    except ValueError:
        return None

