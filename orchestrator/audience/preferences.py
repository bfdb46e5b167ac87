"""Unsubscribe links and the preference centre's choices, written as consent with an audit trail.

A change applies to the very next decision. Required notices (security alerts) keep reaching a
customer who leaves a channel; service topics keep their consent when a channel is unticked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from channels.channel_set import installed_channels
from channels.events import OPTED_OUT, EventKind, ProviderEvent
from orchestrator.consent import (
    ANY,
    consent_allows,
    current_consent,
    keep_consent,
    leave_channel,
    opt_in_required,
    opt_out,
    record_consent,
    update_preferences,
)
from orchestrator.contact_points import addresses_of
from orchestrator.inbound.delivery_events import record_new_events
from orchestrator.models import (
    ConsentState,
    ContactPreference,
    Customer,
    Message,
    Suppression,
    utcnow,
)
from orchestrator.policy import load_policy

SOURCE_UNSUBSCRIBE_LINK = "unsubscribe_link"
SOURCE_PREFERENCE_CENTRE = "preference_centre"

# Topics a customer chooses in the preference centre, in display order, with their labels.
# Everything else the policy knows (security, outage, transactional, support) is a service
# message about the customer's account: not optional here.
CHOOSABLE_TOPICS: dict[str, str] = {
    "marketing": "News and offers",
    "loyalty": "Loyalty rewards and anniversaries",
    "feedback": "Surveys and requests for feedback",
}
EMAIL, SMS = "email", "sms"


def channel_labels() -> dict[str, str]:
    """Every installed channel and what the preference centre calls it, in display order."""
    return {name: spec.label for name, spec in installed_channels().items()}


def unsubscribe(session: Session, customer_id: int, channel: str | None, topic: str | None,
                message_id: int | None = None) -> str:
    """Applies an unsubscribe link; returns what it did, in words for the customer.

    A link names a channel (email when absent) and usually the topic of the message it came
    in. A topic opts out of that topic on that channel; no topic (or ``*``) opts out of every
    message on that channel that is not a required notice such as a security alert. The
    link's message, when it names one of this customer's, gets one ``unsubscribe`` event.
    """
    channel = channel or EMAIL
    message = session.get(Message, message_id) if message_id else None
    if message is not None and message.customer_id == customer_id:
        record_new_events(session, [ProviderEvent(
            provider=SOURCE_UNSUBSCRIBE_LINK, channel=channel, event_id=f"unsubscribe:{message.id}",
            event_type="unsubscribe", payload={}, kind=EventKind.unsubscribe)], [message], utcnow())
    label = channel_labels().get(channel, channel).lower()
    if topic and topic != ANY:
        opt_out(session, customer_id, channel, topic, SOURCE_UNSUBSCRIBE_LINK)
        return f"You will no longer receive {CHOOSABLE_TOPICS.get(topic, topic).lower()} by {label}."
    leave_channel(session, customer_id, channel, required_topics(), SOURCE_UNSUBSCRIBE_LINK)
    return f"You will no longer receive {label} from us, except required notices such as security alerts."


@dataclass
class PreferenceChoices:
    channels: set[str]  # channels the customer accepts non-required messages on
    topics: set[str]  # choosable topics the customer wants
    frequency: str = "any"
    quiet_start: str | None = None  # "HH:MM" local
    quiet_end: str | None = None
    do_not_contact: bool = False
    preferred_channel: str | None = None
    # (channel, topic) pairs switched off on their own (an unsubscribe link) although both
    # boxes are ticked: shown on the page, they stay off unless listed in ``turn_back_on``.
    switched_off: set[tuple[str, str]] = field(default_factory=set)
    turn_back_on: set[tuple[str, str]] = field(default_factory=set)


def texts_stopped(session: Session, customer: Customer) -> bool:
    """The customer replied STOP to our texts: only START from their phone undoes that."""
    if not customer.phone:
        return False
    return session.exec(select(Suppression.id).where(
        Suppression.channel == SMS, Suppression.address == customer.phone,
        Suppression.reason == OPTED_OUT)).first() is not None


def reachable_channels(session: Session, customer: Customer) -> list[str]:
    """The channels we hold an address for, in display order."""
    assert customer.id is not None
    addresses = addresses_of(session, [customer])[customer.id]
    return [ch for ch in channel_labels() if addresses.get(ch)]


def current_choices(session: Session, customer: Customer) -> PreferenceChoices:
    """What the preference centre shows: the consent and preferences in force."""
    assert customer.id is not None
    consent = current_consent(session, [customer.id])
    pref = session.get(ContactPreference, customer.id) or ContactPreference(customer_id=customer.id)
    channels = {ch for ch in channel_labels()
                if consent_allows(consent, customer.id, ch, ANY, opt_in_required(ch))}
    topics = {t for t in CHOOSABLE_TOPICS if consent_allows(consent, customer.id, ANY, t)}
    return PreferenceChoices(
        channels=channels,
        topics=topics,
        switched_off={(ch, t) for ch in channels for t in topics
                      if not consent_allows(consent, customer.id, ch, t, opt_in_required(ch))},
        frequency=pref.frequency,
        quiet_start=pref.quiet_start,
        quiet_end=pref.quiet_end,
        do_not_contact=pref.do_not_contact,
        preferred_channel=pref.preferred_channels[0] if pref.preferred_channels else None,
    )


def required_topics() -> list[str]:
    """Topics the policy marks required (security notices): they reach every customer."""
    return load_policy().required_topics()


def service_topics() -> list[str]:
    """Every topic the policy knows that is not a choice in the preference centre."""
    return [name for name in load_policy().topics if name not in CHOOSABLE_TOPICS]


def save_choices(session: Session, customer: Customer, choices: PreferenceChoices,
                 source: str = SOURCE_PREFERENCE_CENTRE) -> None:
    """Writes the preference centre's choices as consent and preferences (both audited).

    Afterwards, for every channel and choosable topic, a message may go out exactly when
    both the channel and the topic are ticked, unless that pair was switched off on its own
    and not turned back on. Unticking a channel stops the choosable topics
    there; service messages (security, outage, transactional, support) keep their consent.
    """
    assert customer.id is not None
    cid = customer.id
    labels = channel_labels()
    unknown = (choices.channels - set(labels)) | (choices.topics - set(CHOOSABLE_TOPICS))
    if unknown:
        raise ValueError(f"unknown choice(s): {', '.join(sorted(unknown))}")
    switched_off = current_choices(session, customer).switched_off - choices.turn_back_on
    unticked = [ch for ch in labels if ch not in choices.channels]
    restore = keep_consent(session, cid, unticked, service_topics())
    for ch in labels:
        state = ConsentState.opted_in if ch in choices.channels else ConsentState.opted_out
        record_consent(session, cid, ch, ANY, state, source)
    for topic in CHOOSABLE_TOPICS:
        state = ConsentState.opted_in if topic in choices.topics else ConsentState.opted_out
        record_consent(session, cid, ANY, topic, state, source)
    session.flush()
    consent = current_consent(session, [cid])
    for ch in labels:
        for topic in CHOOSABLE_TOPICS:
            wanted = ch in choices.channels and topic in choices.topics and (ch, topic) not in switched_off
            if consent_allows(consent, cid, ch, topic, opt_in_required(ch)) != wanted:
                state = ConsentState.opted_in if wanted else ConsentState.opted_out
                record_consent(session, cid, ch, topic, state, source)
    restore(source)
    # The policy tries preferred channels first; one the customer unticked is no preference.
    preferred = [choices.preferred_channel] if choices.preferred_channel in choices.channels else []
    update_preferences(
        session, cid, source,
        preferred_channels=preferred,
        frequency=choices.frequency,
        quiet_start=choices.quiet_start,
        quiet_end=choices.quiet_end,
        do_not_contact=choices.do_not_contact,
    )
