"""What comes back from customers and providers, mapped onto the ledger, consent and suppressions.

The web app verifies signatures and parses requests; everything it learns lands here:

- provider delivery events (SendGrid Event Webhook, Twilio status callbacks) move a ledger row
  forward (never backwards), are stored as ``DeliveryEvent`` rows, suppress dead addresses
  and record opt-outs;
- inbound SMS: opt-out / opt-in / help keywords, and any other reply kept as feedback with a
  phone task so that no reply is lost;
- opt-outs and the preference centre's choices, written as consent with an audit trail.

Every webhook effect is idempotent: a ``DeliveryEvent`` row is inserted first with
``ON CONFLICT DO NOTHING`` on (provider, provider_event_id), and only a newly inserted event
has effects, so a repeated (or concurrent) delivery of the same event changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, literal, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from orchestrator.consent import (
    ANY,
    consent_allows,
    current_consent,
    record_consent,
    suppress_address,
    update_preferences,
)
from orchestrator.models import (
    Channel,
    ConsentState,
    ContactPreference,
    Customer,
    CustomerFeedback,
    DeliveryEvent,
    EventKind,
    Message,
    MessageStatus,
    Suppression,
    address_for,
    utcnow,
)
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.policy import load_policy
from orchestrator.privacy import mask_address, redact_text
from orchestrator.surveys import answer_from_sms

log = logging.getLogger(__name__)

SENDGRID = "sendgrid"
TWILIO = "twilio"
PROVIDER_CHANNEL = {SENDGRID: Channel.email.value, TWILIO: Channel.sms.value}

SOURCE_SMS_KEYWORD = "sms_keyword"
SOURCE_SMS_REPLY = "sms_reply"


def webhook_source(provider: str) -> str:
    return f"webhook:{provider}"


# How far along a message is. An event only ever moves a row to a higher rank, so a late
# "processed" cannot turn a delivered message back into a sent one. Failures are final,
# and rows we decided not to send are never touched by a provider event.
_RANK: dict[str, int] = {
    MessageStatus.planned: 0,
    MessageStatus.deferred: 0,
    MessageStatus.sending: 0,
    MessageStatus.reconcile: 0,  # an event proves the provider got it: resolves the doubt
    MessageStatus.sent: 1,
    MessageStatus.delivered: 2,
    MessageStatus.failed: 3,
    MessageStatus.bounced: 3,
    MessageStatus.cancelled: 4,
    MessageStatus.suppressed: 4,
}


@dataclass
class ProviderEvent:
    """One delivery event in provider-neutral terms."""

    provider: str
    event_id: str  # unique per provider: the idempotence key
    event_type: str
    payload: dict[str, Any]
    kind: EventKind = EventKind.other  # what it means, for reports
    message_id: int | None = None  # our ledger id, carried through the provider call
    provider_message_id: str | None = None  # fallback match on Message.provider_message_id
    status: MessageStatus | None = None  # the ledger status this event implies
    occurred_at: datetime | None = None
    address: str | None = None
    suppress_reason: str | None = None  # the address is dead: never use it again
    opt_out_topic: str | None = None  # "*" = everything on this channel; "message" = its topic
    error: str | None = None

    @property
    def channel(self) -> str:
        return PROVIDER_CHANNEL[self.provider]


@dataclass
class FeedbackReport:
    received: int = 0
    duplicates: int = 0
    status_changes: int = 0
    suppressed: int = 0
    opt_outs: int = 0
    unmatched: int = 0  # events whose message we could not find (kept all the same)


def _parse_message_id(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None  # ledger ids are 32-bit integers


def _epoch(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


# --- SendGrid --------------------------------------------------------------------------------

# SendGrid's "dropped" reasons that mean the address itself is bad.
_DROPPED_SUPPRESS = {
    "bounced address": "bounce",
    "spam reporting address": "spamreport",
    "invalid": "invalid",
}
_DROPPED_OPT_OUT = "unsubscribed address"
_SENDGRID_KIND = {
    "processed": EventKind.sent, "deferred": EventKind.deferred, "delivered": EventKind.delivered,
    "open": EventKind.open, "click": EventKind.click, "bounce": EventKind.bounce,
    "dropped": EventKind.dropped, "spamreport": EventKind.spam_report,
    "unsubscribe": EventKind.unsubscribe, "group_unsubscribe": EventKind.unsubscribe,
}


def sendgrid_event(raw: Mapping[str, Any]) -> ProviderEvent:
    """Maps one SendGrid Event Webhook event; raises ValueError when it is not an event."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("event"), str):
        raise ValueError("each event must be an object with an 'event' field")
    kind = raw["event"]
    event_id = raw.get("sg_event_id")
    if not isinstance(event_id, str) or not event_id:
        # Always present in real events; without it the content itself is the identity.
        event_id = "sha256:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()
    sg_message_id = raw.get("sg_message_id")
    event = ProviderEvent(
        provider=SENDGRID,
        event_id=event_id[:200],
        event_type=kind[:32],
        payload=dict(raw),
        message_id=_parse_message_id(raw.get("message_id")),
        # sg_message_id is the X-Message-Id of the send plus a ".filter..." suffix
        provider_message_id=sg_message_id.split(".", 1)[0] if isinstance(sg_message_id, str) else None,
        occurred_at=_epoch(raw.get("timestamp")),
        address=raw.get("email") if isinstance(raw.get("email"), str) else None,
    )
    event.kind = _SENDGRID_KIND.get(kind, EventKind.other)
    if kind == "open" and raw.get("sg_machine_open") is True:
        event.kind = EventKind.machine_open
    reason = str(raw.get("reason") or raw.get("response") or "")
    if kind in ("processed", "deferred"):
        event.status = MessageStatus.sent
    elif kind in ("delivered", "open", "click"):  # an open or a click proves delivery
        event.status = MessageStatus.delivered
    elif kind == "bounce":
        if raw.get("type") == "blocked":  # refused for now (reputation, policy): not a dead address
            event.status, event.error = MessageStatus.failed, f"blocked: {reason}"
            event.kind = EventKind.blocked
        else:
            event.status, event.error = MessageStatus.bounced, f"bounce: {reason}"
            event.suppress_reason = "bounce"
    elif kind == "dropped":
        event.status, event.error = MessageStatus.failed, f"dropped: {reason}"
        event.suppress_reason = _DROPPED_SUPPRESS.get(reason.strip().lower())
        if reason.strip().lower() == _DROPPED_OPT_OUT:
            event.opt_out_topic = ANY
    elif kind == "spamreport":
        event.suppress_reason = "spamreport"
    elif kind == "unsubscribe":
        event.opt_out_topic = ANY
    elif kind == "group_unsubscribe":
        # The kind of message they unsubscribed from; without the message, everything on email.
        event.opt_out_topic = "message"
    return event


# --- Twilio status callbacks ------------------------------------------------------------------

_TWILIO_STATUS = {
    "accepted": MessageStatus.sent,
    "scheduled": MessageStatus.sent,
    "queued": MessageStatus.sent,
    "sending": MessageStatus.sent,
    "sent": MessageStatus.sent,
    "delivered": MessageStatus.delivered,
    "read": MessageStatus.delivered,
    "undelivered": MessageStatus.failed,
    "failed": MessageStatus.failed,
    "canceled": MessageStatus.failed,
}

_TWILIO_KIND = {MessageStatus.sent: EventKind.sent, MessageStatus.delivered: EventKind.delivered,
                MessageStatus.failed: EventKind.failed}

# Error codes that mean the number will never work for us; others (30003 handset off,
# 30008 unknown, carrier filtering of content) may succeed another time.
PERMANENT_SMS_ERRORS = {
    "21211": "invalid_number",
    "21614": "not_mobile",
    "21610": "unsubscribed",  # the recipient replied STOP to our sender
    "30004": "blocked",  # blocked by the recipient or the carrier
    "30005": "unknown_number",
    "30006": "landline_or_unreachable_carrier",
}


def twilio_status_event(params: Mapping[str, str], message_id: str | None) -> ProviderEvent:
    """Maps a Twilio message status callback; raises ValueError when fields are missing."""
    sid = (params.get("MessageSid") or params.get("SmsSid") or "").strip()
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").strip().lower()
    if not sid or not status:
        raise ValueError("MessageSid and MessageStatus are required")
    event = ProviderEvent(
        provider=TWILIO,
        event_id=f"{sid}:{status}"[:200],
        event_type=status[:32],
        payload=dict(params),
        message_id=_parse_message_id(message_id),
        provider_message_id=sid,
        status=_TWILIO_STATUS.get(status),
        kind=_TWILIO_KIND.get(_TWILIO_STATUS.get(status), EventKind.other),
        occurred_at=None,
        address=params.get("To") or None,
    )
    code = (params.get("ErrorCode") or "").strip()
    if code and event.status is MessageStatus.failed:
        event.error = f"twilio {status}: error {code}"
        event.suppress_reason = PERMANENT_SMS_ERRORS.get(code)
        if event.suppress_reason == "unsubscribed":
            event.opt_out_topic = ANY
    return event


# --- applying events ---------------------------------------------------------------------------


def _insert_new_events(
    session: Session, events: list[ProviderEvent], messages: list[Message | None], received_at: datetime
) -> set[str]:
    """Inserts events not seen before (with the message each belongs to); returns the ids of
    those actually inserted."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [
        {
            "message_id": message.id if message is not None else None,
            "provider": e.provider,
            "provider_event_id": e.event_id,
            "event_type": e.event_type,
            "kind": e.kind.value,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": received_at,
        }
        # One order for every writer: concurrent batches cannot deadlock on the unique index.
        for e, message in sorted(zip(events, messages, strict=True), key=lambda p: p[0].event_id)
    ]
    stmt = (
        insert(DeliveryEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
        .returning(DeliveryEvent.provider_event_id)
    )
    return set(session.connection().execute(stmt).scalars())


def _find_messages(session: Session, events: list[ProviderEvent]) -> list[Message | None]:
    """Each event's ledger row: by our id first, then by the provider's message id."""
    ids = {e.message_id for e in events if e.message_id}
    by_id = {m.id: m for m in session.exec(select(Message).where(Message.id.in_(ids)))} if ids else {}
    provider_ids = {e.provider_message_id for e in events
                    if e.provider_message_id and e.message_id not in by_id}
    # A merged SendGrid request gives all its recipients one message id: it only identifies a
    # message when it names one row.
    sharing: dict[str | None, list[Message]] = {}
    if provider_ids:
        for m in session.exec(select(Message).where(Message.provider_message_id.in_(provider_ids))):
            sharing.setdefault(m.provider_message_id, []).append(m)
    by_provider_id = {pid: rows[0] for pid, rows in sharing.items() if len(rows) == 1}
    return [by_id.get(e.message_id) or by_provider_id.get(e.provider_message_id) for e in events]


_message = Message.__table__  # type: ignore[attr-defined]


def _advance(session: Session, moves: list[tuple[ProviderEvent, Message]], now: datetime) -> int:
    """Moves each message forward to its event's status; returns how many moves took.

    One conditional UPDATE per target status (executed for many rows): a row moves only
    from a lower rank, so events for one message, applied in any order or by concurrent
    requests, cannot move it backwards. On PostgreSQL the rows are locked first, in id
    order, so concurrent batches cannot deadlock.
    """
    ids = sorted({message.id for _, message in moves if message.id is not None})
    if not ids:
        return 0
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(select(_message.c.id).where(_message.c.id.in_(ids)).order_by(_message.c.id).with_for_update())
    # What the report counts: the rank each message reaches, walking its events in order.
    reached = {message.id: _RANK.get(message.status, 0) for _, message in moves}
    taken = 0
    by_status: dict[MessageStatus, list[dict[str, Any]]] = {}
    for event, message in moves:
        if event.status is None:
            continue
        if _RANK[event.status] > reached[message.id]:
            reached[message.id], taken = _RANK[event.status], taken + 1
        by_status.setdefault(event.status, []).append({
            "mid": message.id,
            "when": event.occurred_at or now,
            "error": redact_text(event.error)[:1000] if event.error else None,
            "provider": event.provider,
            "pmid": event.provider_message_id,
        })
    c = _message.c
    for status, params in by_status.items():
        values: dict[str, Any] = {
            "status": status.value,
            "updated_at": now,
            "last_error": func.coalesce(bindparam("error"), c.last_error),
            # The report can overtake dispatch recording the provider's answer: fill the gap.
            "provider": func.coalesce(c.provider, bindparam("provider")),
            "provider_message_id": func.coalesce(c.provider_message_id, bindparam("pmid")),
        }
        if status in (MessageStatus.sent, MessageStatus.delivered):
            values["sent_at"] = func.coalesce(c.sent_at, bindparam("when"))
        if status is MessageStatus.delivered:
            values["delivered_at"] = func.coalesce(c.delivered_at, bindparam("when"))
        # literal() values, not a list: an expanding IN cannot be executed for many rows
        lower = [literal(s.value) for s, rank in _RANK.items() if rank < _RANK[status]]
        conn.execute(update(_message).where(c.id == bindparam("mid"), c.status.in_(lower)).values(**values),
                     params)
    return taken


def customers_with_address(session: Session, channel: str, address: str) -> list[int]:
    column = Customer.email if channel == Channel.email else Customer.phone
    if channel == Channel.email:
        condition = func.lower(column) == address.strip().lower()
    else:
        condition = column == address.strip()
    return list(session.exec(select(Customer.id).where(condition).order_by(Customer.id)))


def apply_provider_events(
    session: Session, events: list[ProviderEvent], now: datetime | None = None
) -> FeedbackReport:
    """Stores each new event and applies what it means; events seen before change nothing."""
    now = now or utcnow()
    report = FeedbackReport(received=len(events))
    if not events:
        return report
    messages = _find_messages(session, events)
    inserted = _insert_new_events(session, events, messages, now)
    # An event repeated within one request counts once.
    first_of_each: dict[str, tuple[ProviderEvent, Message | None]] = {}
    for event, message in zip(events, messages, strict=True):
        if event.event_id in inserted:
            first_of_each.setdefault(event.event_id, (event, message))
    report.duplicates = len(events) - len(first_of_each)
    fresh = list(first_of_each.values())
    report.unmatched = sum(message is None for _, message in fresh)
    report.status_changes = _advance(session, [(e, m) for e, m in fresh if m is not None], now)
    for event, message in fresh:
        if not (event.suppress_reason or event.opt_out_topic):
            continue
        address = _address(session, event, message)
        if event.suppress_reason and address:
            source = webhook_source(event.provider)
            if suppress_address(session, event.channel, address, event.suppress_reason, source):
                report.suppressed += 1
                log.info("suppressed %s on %s: %s", mask_address(event.channel, address),
                         event.channel, event.suppress_reason)
        if event.opt_out_topic:
            if message is not None:
                owners = [message.customer_id]
                topic = message.topic if event.opt_out_topic == "message" else event.opt_out_topic
            else:  # no message to go by: whoever has the address, from everything on the channel
                owners = customers_with_address(session, event.channel, address) if address else []
                topic = ANY
            for customer_id in owners:
                report.opt_outs += opt_out(session, customer_id, event.channel, topic,
                                           webhook_source(event.provider))
    return report


def _address(session: Session, event: ProviderEvent, message: Message | None) -> str | None:
    """The address an event is about, spelled as the customer record has it (the policy
    matches suppressions on that spelling); the provider's spelling when they differ."""
    stored = None
    if message is not None and (customer := session.get(Customer, message.customer_id)) is not None:
        stored = customer.email if event.channel == Channel.email else customer.phone
    if not event.address:
        return stored
    if stored and stored.strip().lower() == event.address.strip().lower():
        return stored
    return event.address.strip()


# --- consent -----------------------------------------------------------------------------------


def opt_out(session: Session, customer_id: int, channel: str, topic: str, source: str) -> bool:
    """Opts the customer out of ``topic`` on ``channel`` (either may be ``*``), and makes it hold.

    The most specific consent record wins, so an older, narrower opt-in (say "SMS marketing:
    yes") would beat a new broad opt-out ("no SMS"). Such records are overridden with
    opt-outs of their own. Returns True when anything changed.
    """
    changed = record_consent(session, customer_id, channel, topic, ConsentState.opted_out, source)
    session.flush()
    consent = current_consent(session, [customer_id])
    channels = [channel] if channel != ANY else [c.value for c in Channel]
    topics = [topic] if topic != ANY else sorted({t for (_, _, t) in consent if t != ANY})
    for ch in channels:
        for tp in topics:
            if consent_allows(consent, customer_id, ch, tp):
                changed |= record_consent(session, customer_id, ch, tp, ConsentState.opted_out, source)
    return changed


def opt_in(session: Session, customer_id: int, channel: str, topic: str, source: str) -> bool:
    """The customer asked to hear from us again on ``channel`` about ``topic``."""
    return record_consent(session, customer_id, channel, topic, ConsentState.opted_in, source)


# --- inbound SMS -------------------------------------------------------------------------------

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

SMS_REPLY_TASK_TOPIC = "support"
SMS_REPLY_TASK_REASON = "customer replied by SMS"
SMS_REPLY_TASK_PRIORITY = 60  # as the support topic's priority in the shipped policy; due per its SLA
# Opt-outs recorded for a number (STOP, Twilio's 21610); START lifts them, dead numbers stay.
OPTED_OUT_BY_KEYWORD = "unsubscribed"  # the same reason Twilio's error 21610 gives
_LIFTED_BY_OPT_IN = (OPTED_OUT_BY_KEYWORD,)


def help_text(brand: str) -> str:
    return (f"{brand}: account, service and offer messages. Reply STOP to opt out, START to opt back in. "
            "Msg & data rates may apply.")


# Twilio's Advanced Opt-Out names the keyword class it recognised (including custom keywords
# configured on the Messaging Service) in the OptOutType parameter.
_OPT_OUT_TYPES = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


def sms_keyword(body: str, opt_out_type: str | None = None) -> str | None:
    """The keyword a reply is, if it is one: a single word, any case, spaces and a final
    full stop or exclamation mark ignored ("stop", " Stop. ")."""
    if opt_out_type and opt_out_type.strip().upper() in _OPT_OUT_TYPES:
        return _OPT_OUT_TYPES[opt_out_type.strip().upper()]
    word = body.strip().rstrip(".!").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    if word in HELP_KEYWORDS:
        return "help"
    return None


@dataclass
class InboundOutcome:
    kind: str  # opt_out, opt_in, help, feedback, survey_answer, duplicate
    customer_ids: list[int] = field(default_factory=list)
    reply: str | None = None  # text to answer with, if any
    feedback_id: int | None = None
    phone_task_id: int | None = None


def _reply_owner(session: Session, customer_ids: list[int]) -> int | None:
    """Of the customers sharing a number, the one we last texted (else the oldest record)."""
    if len(customer_ids) <= 1:
        return customer_ids[0] if customer_ids else None
    latest = session.exec(
        select(Message.customer_id)
        .where(Message.customer_id.in_(customer_ids), Message.channel == Channel.sms.value)
        .order_by(Message.sent_at.desc().nulls_last(), Message.id.desc())
        .limit(1)
    ).first()
    return latest if latest is not None else customer_ids[0]


def handle_inbound_sms(
    session: Session, sender: str, body: str, sms_sid: str, brand: str, *,
    opt_out_type: str | None = None, now: datetime | None = None,
) -> InboundOutcome:
    """Applies an inbound SMS once (keyed by its MessageSid)."""
    now = now or utcnow()
    keyword = sms_keyword(body, opt_out_type)
    kind = keyword or "feedback"
    marker = ProviderEvent(provider=TWILIO, event_id=f"{sms_sid}:inbound", event_type=f"inbound_{kind}"[:32],
                           payload={"kind": kind}, kind=EventKind.inbound, occurred_at=now)
    if not _insert_new_events(session, [marker], [None], now):
        return InboundOutcome("duplicate")
    customer_ids = customers_with_address(session, Channel.sms.value, sender)
    outcome = InboundOutcome(kind, customer_ids)
    if keyword == "opt_out":
        for customer_id in customer_ids:
            opt_out(session, customer_id, Channel.sms.value, ANY, SOURCE_SMS_KEYWORD)
        # Twilio now refuses every message from our sender to this number; the suppression
        # says so, and holds for a number we do not know yet (a customer imported later).
        suppress_address(session, Channel.sms.value, sender.strip(), OPTED_OUT_BY_KEYWORD, SOURCE_SMS_KEYWORD)
    elif keyword == "opt_in":
        for customer_id in customer_ids:
            opt_in(session, customer_id, Channel.sms.value, ANY, SOURCE_SMS_KEYWORD)
        for row in session.exec(select(Suppression).where(
                Suppression.channel == Channel.sms.value, Suppression.address == sender.strip(),
                Suppression.reason.in_(_LIFTED_BY_OPT_IN))):
            session.delete(row)
    elif keyword == "help":
        outcome.reply = help_text(brand)
    elif (answer := answer_from_sms(session, _reply_owner(session, customer_ids), body, now)) is not None:
        outcome.kind, outcome.feedback_id, outcome.phone_task_id = (
            "survey_answer", answer.feedback.id, answer.phone_task_id)
    else:
        owner = _reply_owner(session, customer_ids)
        source = SOURCE_SMS_REPLY if owner is not None else f"{SOURCE_SMS_REPLY}:unknown_number"
        feedback = CustomerFeedback(customer_id=owner, channel=Channel.sms.value, body=body, source=source)
        session.add(feedback)
        if owner is not None:
            [task] = open_tasks(session, [TaskRequest(
                customer_id=owner, topic=SMS_REPLY_TASK_TOPIC, reason=SMS_REPLY_TASK_REASON,
                script=f"The customer replied by SMS:\n\n{body}", priority=SMS_REPLY_TASK_PRIORITY,
            )], now=now)
            session.flush()
            outcome.phone_task_id = task.id
        session.flush()
        outcome.feedback_id = feedback.id
    log.info("inbound SMS from %s: %s", mask_address("sms", sender), kind)
    return outcome


# --- one-click unsubscribe and the preference centre ------------------------------------------

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
CHANNEL_LABELS: dict[str, str] = {
    Channel.email.value: "Email",
    Channel.sms.value: "Text messages (SMS)",
    Channel.social.value: "Direct messages on X",
    Channel.phone.value: "Phone calls",
}


def unsubscribe(session: Session, customer_id: int, channel: str | None, topic: str | None,
                message_id: int | None = None) -> str:
    """Applies an unsubscribe link; returns what it did, in words for the customer.

    A link names a channel (email when absent) and usually the topic of the message it came
    in. A topic opts out of that topic on that channel; no topic (or ``*``) opts out of every
    message on that channel that is not a required notice such as a security alert. The
    link's message, when it names one of this customer's, gets one ``unsubscribe`` event.
    """
    channel = channel or Channel.email.value
    message = session.get(Message, message_id) if message_id else None
    if message is not None and message.customer_id == customer_id:
        _insert_new_events(session, [ProviderEvent(
            provider=SOURCE_UNSUBSCRIBE_LINK, event_id=f"unsubscribe:{message.id}", event_type="unsubscribe",
            payload={}, kind=EventKind.unsubscribe)], [message], utcnow())
    label = CHANNEL_LABELS.get(channel, channel).lower()
    if topic and topic != ANY:
        opt_out(session, customer_id, channel, topic, SOURCE_UNSUBSCRIBE_LINK)
        return f"You will no longer receive {CHOOSABLE_TOPICS.get(topic, topic).lower()} by {label}."
    restore = _keep_consent(session, customer_id, [channel], required_topics())
    opt_out(session, customer_id, channel, ANY, SOURCE_UNSUBSCRIBE_LINK)
    restore(SOURCE_UNSUBSCRIBE_LINK)
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
        Suppression.channel == Channel.sms.value, Suppression.address == customer.phone,
        Suppression.reason == OPTED_OUT_BY_KEYWORD)).first() is not None


def reachable_channels(customer: Customer) -> list[str]:
    """The channels we hold an address for, in display order."""
    return [ch for ch in CHANNEL_LABELS if address_for(ch, customer)]


def current_choices(session: Session, customer: Customer) -> PreferenceChoices:
    """What the preference centre shows: the consent and preferences in force."""
    assert customer.id is not None
    consent = current_consent(session, [customer.id])
    pref = session.get(ContactPreference, customer.id) or ContactPreference(customer_id=customer.id)
    channels = {ch for ch in CHANNEL_LABELS if consent_allows(consent, customer.id, ch, ANY)}
    topics = {t for t in CHOOSABLE_TOPICS if consent_allows(consent, customer.id, ANY, t)}
    return PreferenceChoices(
        channels=channels,
        topics=topics,
        switched_off={(ch, t) for ch in channels for t in topics
                      if not consent_allows(consent, customer.id, ch, t)},
        frequency=pref.frequency,
        quiet_start=pref.quiet_start,
        quiet_end=pref.quiet_end,
        do_not_contact=pref.do_not_contact,
        preferred_channel=pref.preferred_channels[0] if pref.preferred_channels else None,
    )


def required_topics() -> list[str]:
    """Topics the policy marks required (security notices): they reach every customer."""
    return [name for name, topic in load_policy().topics.items() if topic.required]


def service_topics() -> list[str]:
    """Every topic the policy knows that is not a choice in the preference centre."""
    return [name for name in load_policy().topics if name not in CHOOSABLE_TOPICS]


def _keep_consent(
    session: Session, customer_id: int, channels: Iterable[str], topics: Iterable[str]
) -> Callable[[str], None]:
    """Remembers whether each of ``topics`` may reach the customer on ``channels``; the
    returned function restores that after a broad channel opt-out, so leaving a channel
    does not silence those topics there (nor re-enable what was opted out before)."""
    before = current_consent(session, [customer_id])
    allowed = {(ch, t): consent_allows(before, customer_id, ch, t) for ch in channels for t in topics}

    def restore(source: str) -> None:
        session.flush()
        after = current_consent(session, [customer_id])
        for (ch, t), was_allowed in allowed.items():
            if consent_allows(after, customer_id, ch, t) != was_allowed:
                state = ConsentState.opted_in if was_allowed else ConsentState.opted_out
                record_consent(session, customer_id, ch, t, state, source)

    return restore


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
    unknown = (choices.channels - set(CHANNEL_LABELS)) | (choices.topics - set(CHOOSABLE_TOPICS))
    if unknown:
        raise ValueError(f"unknown choice(s): {', '.join(sorted(unknown))}")
    switched_off = current_choices(session, customer).switched_off - choices.turn_back_on
    unticked = [ch for ch in CHANNEL_LABELS if ch not in choices.channels]
    restore = _keep_consent(session, cid, unticked, service_topics())
    for ch in CHANNEL_LABELS:
        state = ConsentState.opted_in if ch in choices.channels else ConsentState.opted_out
        record_consent(session, cid, ch, ANY, state, source)
    for topic in CHOOSABLE_TOPICS:
        state = ConsentState.opted_in if topic in choices.topics else ConsentState.opted_out
        record_consent(session, cid, ANY, topic, state, source)
    session.flush()
    consent = current_consent(session, [cid])
    for ch in CHANNEL_LABELS:
        for topic in CHOOSABLE_TOPICS:
            wanted = ch in choices.channels and topic in choices.topics and (ch, topic) not in switched_off
            if consent_allows(consent, cid, ch, topic) != wanted:
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
