"""WhatsApp through Twilio, written against the public plug-in interface only.

It imports nothing from the core: the channel is declared here (``WHATSAPP``), the adapter is
registered under the ``orchestrator.channels`` entry point ``twilio-whatsapp``, and its settings
and Content-template map are its own (``channels.whatsapp.settings``). A package of your own
would look the same.

WhatsApp's rules, as the adapter applies them:

- addresses are ``whatsapp:+E164``;
- a customer must opt in to WhatsApp itself (``opt_in_required``);
- inside the 24-hour customer-service window (opened by the customer's last message to us,
  which the inbound webhook records), free-form text goes out; outside it only a pre-approved
  Content template (ContentSid + ContentVariables), configured per message and locale; with no
  template for the message the result is ``Permanent(outside_window)``, so the policy falls back;
- Twilio 63016 (outside the window), 63003 (not a WhatsApp number) and the other WhatsApp codes
  are read from Twilio's one error table (``channels.twilio.errors``), whether Twilio refuses the
  send at once or reports the failure later in a status callback: either way the result is the
  same ``Permanent`` reason, so the policy falls back; a 63003 also suppresses the address, as
  ``not_on_whatsapp`` either way.
"""

from __future__ import annotations

from channels.addresses import mask_phone, normalise_phone
from channels.base import AddressKind, ChannelSpec

PREFIX = "whatsapp:"


def normalise_whatsapp(value: str, region: str) -> str:
    """``whatsapp:+14155550100``; accepts the number with or without the prefix."""
    number = value.strip()
    if number.lower().startswith(PREFIX):
        number = number[len(PREFIX) :]
    return PREFIX + normalise_phone(number, region)


def mask_whatsapp(value: str) -> str:
    return PREFIX + mask_phone(value.removeprefix(PREFIX))


WHATSAPP_ADDRESS = AddressKind(
    "whatsapp", normalise_whatsapp, mask_whatsapp, "a WhatsApp number (whatsapp:+E164)"
)
WHATSAPP = ChannelSpec(
    "whatsapp",
    WHATSAPP_ADDRESS,
    label="WhatsApp",
    cost=2.0,
    quiet_hours=("21:00", "08:00"),
    variants={"whatsapp": {"text": "whatsapp.txt"}},
    max_chars=1600,  # Twilio's limit on a WhatsApp message body
    conversational=True,
    opt_in_required=True,
)

WINDOW_HOURS = 24
