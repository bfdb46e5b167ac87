"""The four channels that ship with the project, declared like any other.

Their adapters (SendGrid, Twilio SMS, X, phone tasks) point their ``channel_spec`` here. Their
lengths are measured in their own units (SMS segments, X weighted length, subject length) with
the limits in tone_rules.yaml, so ``max_chars`` stays unset; quiet hours come from policy.yaml.
"""

from __future__ import annotations

from channels.addresses import EMAIL as EMAIL_ADDRESS
from channels.addresses import PHONE as PHONE_ADDRESS
from channels.addresses import X_USER
from channels.base import ChannelSpec

EMAIL = ChannelSpec(
    "email", EMAIL_ADDRESS, label="Email", cost=1.0,
    variants={"email": {"subject": "email_subject.txt", "html": "email.html", "text": "email.txt"}},
)
SMS = ChannelSpec("sms", PHONE_ADDRESS, label="Text messages (SMS)", cost=1.0, conversational=True)
SOCIAL = ChannelSpec(
    "social", X_USER, label="Direct messages on X", cost=1.0, conversational=True,
    # A message to one customer is a DM when the message has one; an outage update is a post.
    variants={"social:dm": {"text": "social_dm.txt"}, "social:post": {"text": "social_post.txt"}},
)
PHONE = ChannelSpec("phone", PHONE_ADDRESS, label="Phone calls", cost=1.0)

BUILT_IN = (EMAIL, SMS, SOCIAL, PHONE)
