"""Inbound SMS: opt-out, opt-in and help, and any other reply kept as feedback.

What a reply asks for is ``inbound.replies``' rule: the keywords, and since the FCC's 2025 rule
any reasonable way of saying stop ("please stop texting me"). A reply that is not a keyword
is stored as ``CustomerFeedback`` and opens a phone task, so no reply is lost; an opt-out in the
customer's own words is kept as feedback too. Each inbound message is applied once, keyed by
the provider's id for it.

The answers (HELP, the confirmation of an opt-out) are the ``sms_help`` and ``sms_opted_out``
templates: the brand's name, words and customer-care contact from ``templates/brand.yaml``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from channels.events import OPTED_OUT, EventKind, InboundMessage, ProviderEvent, SmsKeyword
from orchestrator.consent import ANY, lift_suppression, opt_out, suppress_address, undo_opt_outs
from orchestrator.contact_points import record_inbound
from orchestrator.inbound.delivery_events import record_new_events
from orchestrator.inbound.replies import is_bare_keyword, reply_intent
from orchestrator.models import CustomerFeedback, Message, utcnow
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.privacy import mask_address
from orchestrator.surveys import answer_from_sms

log = logging.getLogger(__name__)

SOURCE_SMS_KEYWORD = "sms_keyword"
SOURCE_SMS_REPLY = "sms_reply"
SOURCE_SMS_OPT_OUT = "sms_reply:opt_out"  # an opt-out in the customer's own words, kept

SMS_REPLY_TASK_TOPIC = "support"
SMS_REPLY_TASK_REASON = "customer replied by SMS"
SMS_REPLY_TASK_PRIORITY = 60  # as the support topic's priority in the shipped policy; due per its SLA
# Opt-outs recorded for a number (STOP here, or the provider reporting one); START lifts them,
# dead numbers stay.
OPTED_OUT_BY_KEYWORD = OPTED_OUT
_LIFTED_BY_OPT_IN = (OPTED_OUT_BY_KEYWORD,)
# Who records the opt-outs a number sent: this module, and the provider reporting that the
# number said STOP to it. START undoes those only, never an import's or the preference centre's.
_THE_NUMBERS_OWN = (SOURCE_SMS_KEYWORD, "webhook:", "provider:")
HELP_TEMPLATE = "sms_help"
OPTED_OUT_TEMPLATE = "sms_opted_out"


def sms_keyword(body: str, recognised: SmsKeyword | None = None) -> SmsKeyword | None:
    """What the reply asks for: ``recognised`` when the provider already knew, else the rule."""
    return recognised or reply_intent(body)


def brand_reply(template: str) -> str | None:
    """One of the brand's SMS answers, rendered; None (logged) when the templates cannot give it."""
    from orchestrator.templating import TemplateProblem, build_context, render

    try:
        return render(template, tone=None, channel="sms", context=build_context(None, {}, topic="support")
                      ).text.strip()
    except (TemplateProblem, ValueError) as exc:  # RenderError, LengthError: `templates lint` says so
        log.error("cannot answer with the %s template: %s", template, exc)
        return None


@dataclass
class InboundOutcome:
    kind: str  # opt_out, opt_in, help, feedback, survey_answer, duplicate
    customer_ids: list[int] = field(default_factory=list)
    reply: str | None = None  # text to answer with, if any
    feedback_id: int | None = None
    phone_task_id: int | None = None


def reply_owner(session: Session, customer_ids: list[int], channel: str) -> int | None:
    """Of the customers sharing a number, the one we last texted (else the oldest record)."""
    if len(customer_ids) <= 1:
        return customer_ids[0] if customer_ids else None
    latest = session.exec(
        select(Message.customer_id)
        .where(col(Message.customer_id).in_(customer_ids), col(Message.channel) == channel)
        .order_by(col(Message.sent_at).desc().nulls_last(), col(Message.id).desc())
        .limit(1)
    ).first()
    return latest if latest is not None else customer_ids[0]


def handle_inbound_sms(session: Session, message: InboundMessage, *, now: datetime | None = None
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
    channel = message.channel  # SMS, or a conversational plug-in channel such as WhatsApp
    # The sender's customers; on a contact-point channel this also verifies the address and
    # opens the reply window (WhatsApp's 24 hours).
    customer_ids = record_inbound(session, channel, sender, now)
    outcome = InboundOutcome(kind, customer_ids)
    if keyword == "opt_out":
        for customer_id in customer_ids:
            opt_out(session, customer_id, channel, ANY, SOURCE_SMS_KEYWORD)
        # The provider refuses every message from our sender to a number that sent it a keyword;
        # the suppression says so, and holds for a number we do not know yet (imported later).
        first = suppress_address(session, channel, sender.strip(), OPTED_OUT_BY_KEYWORD,
                                 SOURCE_SMS_KEYWORD)
        if not (message.keyword or is_bare_keyword(body)):
            # In the customer's own words: the provider did not see an opt-out, so we confirm it
            # (once), and the words are kept.
            outcome.reply = brand_reply(OPTED_OUT_TEMPLATE) if first else None
            owner = reply_owner(session, customer_ids, channel)
            feedback = CustomerFeedback(customer_id=owner, channel=channel, body=body,
                                        source=SOURCE_SMS_OPT_OUT)
            session.add(feedback)
            session.flush()
            outcome.feedback_id = feedback.id
    elif keyword == "opt_in":
        for customer_id in customer_ids:
            undo_opt_outs(session, customer_id, channel, _THE_NUMBERS_OWN, SOURCE_SMS_KEYWORD)
        lift_suppression(session, channel, sender.strip(), SOURCE_SMS_KEYWORD, reasons=_LIFTED_BY_OPT_IN)
    elif keyword == "help":
        outcome.reply = brand_reply(HELP_TEMPLATE)
    elif (answer := answer_from_sms(session, reply_owner(session, customer_ids, channel), body, now)
          ) is not None:
        outcome.kind, outcome.feedback_id, outcome.phone_task_id = (
            "survey_answer", answer.feedback.id, answer.phone_task_id)
    else:
        owner = reply_owner(session, customer_ids, channel)
        source = SOURCE_SMS_REPLY if owner is not None else f"{SOURCE_SMS_REPLY}:unknown_number"
        feedback = CustomerFeedback(customer_id=owner, channel=channel, body=body, source=source)
        session.add(feedback)
        if owner is not None:
            [task] = open_tasks(session, [TaskRequest(
                customer_id=owner, topic=SMS_REPLY_TASK_TOPIC, reason=SMS_REPLY_TASK_REASON,
                script=f"The customer replied by {'SMS' if channel == 'sms' else channel}:\n\n{body}",
                priority=SMS_REPLY_TASK_PRIORITY,
            )], now=now)
            session.flush()
            outcome.phone_task_id = task.id
        session.flush()
        outcome.feedback_id = feedback.id
    log.info("inbound %s from %s: %s", channel, mask_address(channel, sender), kind)
    return outcome
