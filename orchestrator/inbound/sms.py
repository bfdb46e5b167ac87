"""Inbound SMS: opt-out, opt-in and help keywords, and any other reply kept as feedback.

A reply that is not a keyword is stored as ``CustomerFeedback`` and opens a phone task, so no
reply is lost. Each inbound message is applied once, keyed by the provider's id for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, select

from channels.events import OPTED_OUT, EventKind, InboundMessage, ProviderEvent, SmsKeyword
from orchestrator.consent import ANY, customers_with_address, opt_in, opt_out, suppress_address
from orchestrator.inbound.delivery_events import record_new_events
from orchestrator.models import Channel, CustomerFeedback, Message, Suppression, utcnow
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.privacy import mask_address
from orchestrator.surveys import answer_from_sms

log = logging.getLogger(__name__)

SOURCE_SMS_KEYWORD = "sms_keyword"
SOURCE_SMS_REPLY = "sms_reply"

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})

SMS_REPLY_TASK_TOPIC = "support"
SMS_REPLY_TASK_REASON = "customer replied by SMS"
SMS_REPLY_TASK_PRIORITY = 60  # as the support topic's priority in the shipped policy; due per its SLA
# Opt-outs recorded for a number (STOP here, or the provider reporting one); START lifts them,
# dead numbers stay.
OPTED_OUT_BY_KEYWORD = OPTED_OUT
_LIFTED_BY_OPT_IN = (OPTED_OUT_BY_KEYWORD,)


def help_text(brand: str) -> str:
    return (f"{brand}: account, service and offer messages. Reply STOP to opt out, START to opt back in. "
            "Msg & data rates may apply.")


def sms_keyword(body: str, recognised: SmsKeyword | None = None) -> SmsKeyword | None:
    """The keyword a reply is, if it is one: ``recognised`` when the provider already knew it,
    else a single word, any case, spaces and a final full stop or exclamation mark ignored
    ("stop", " Stop. ")."""
    if recognised:
        return recognised
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
    session: Session, message: InboundMessage, brand: str, *, now: datetime | None = None
) -> InboundOutcome:
    """Applies an inbound SMS once (keyed by the provider's id for it)."""
    now = now or utcnow()
    sender, body = message.sender, message.body
    keyword = sms_keyword(body, message.keyword)
    kind = keyword or "feedback"
    marker = ProviderEvent(provider=message.provider, channel=message.channel,
                           event_id=f"{message.message_id}:inbound", event_type=f"inbound_{kind}"[:32],
                           payload={"kind": kind}, kind=EventKind.inbound, occurred_at=now)
    if not record_new_events(session, [marker], [None], now):
        return InboundOutcome("duplicate")
    customer_ids = customers_with_address(session, Channel.sms.value, sender)
    outcome = InboundOutcome(kind, customer_ids)
    if keyword == "opt_out":
        for customer_id in customer_ids:
            opt_out(session, customer_id, Channel.sms.value, ANY, SOURCE_SMS_KEYWORD)
        # The provider now refuses every message from our sender to this number; the suppression
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
