"""Inbound email: a customer's reply to one of our emails, kept as feedback, and an opt-out honoured.

What the reply asks for is ``inbound.replies``' rule, read in the subject and in the customer's own
words (the text above the quoted email they answer): "Unsubscribe", "please stop emailing me" and
the like leave email as the unsubscribe link does (required notices such as security alerts keep
reaching them). Every reply is kept as ``CustomerFeedback``, and any reply with more to it than an
opt-out opens a phone task, so no reply is lost. Out-of-office and other automatic replies are
recorded as received and nothing more. Each email is applied once, keyed by its Message-ID.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlmodel import Session

from channels.events import EventKind, InboundMessage, ProviderEvent
from orchestrator.consent import leave_channel
from orchestrator.contact_points import record_inbound
from orchestrator.inbound.delivery_events import record_new_events
from orchestrator.inbound.replies import is_bare_keyword, reply_intent
from orchestrator.inbound.sms import InboundOutcome, reply_owner
from orchestrator.models import CustomerFeedback, utcnow
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.policy import load_policy
from orchestrator.privacy import mask_address

log = logging.getLogger(__name__)

SOURCE_EMAIL_REPLY = "email_reply"
SOURCE_EMAIL_OPT_OUT = "email_reply:opt_out"
EMAIL_REPLY_TASK_TOPIC = "support"
EMAIL_REPLY_TASK_REASON = "customer replied by email"
EMAIL_REPLY_TASK_PRIORITY = 60  # as an SMS reply's

# Where the quoted email starts: "On <date>, <name> wrote:" (on one line or wrapped onto a second),
# Outlook's separator and header block.
_QUOTE_STARTS = re.compile(
    r"^\s*(On\b[^\n]{0,300}(\n[^\n]{0,300})?\bwrote:\s*$|-{2,}\s*Original Message\s*-{2,}|_{10,}\s*$"
    r"|From:\s.+$)",
    re.IGNORECASE | re.MULTILINE)

_REPLY_PREFIX = re.compile(r"^\s*(re|aw|sv|fw|fwd)\s*:", re.IGNORECASE)


def own_words(body: str) -> str:
    """The customer's text in a reply: above the quoted email, without quoted (``>``) lines."""
    start = _QUOTE_STARTS.search(body)
    text = body[:start.start()] if start else body
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">")).strip()


def handle_inbound_email(session: Session, message: InboundMessage, *, now: datetime | None = None
                         ) -> InboundOutcome:
    """Applies an inbound email once (keyed by its Message-ID)."""
    now = now or utcnow()
    subject, words = (message.subject or "").strip(), own_words(message.body)
    if message.automatic:
        kind = "automatic"
    elif "opt_out" in (reply_intent(subject), reply_intent(words)):
        kind = "opt_out"
    else:
        kind = "feedback"
    marker = ProviderEvent(provider=message.provider, channel=message.channel,
                           event_id=f"{message.message_id}:inbound", event_type=f"inbound_{kind}",
                           payload={"kind": kind}, kind=EventKind.inbound, occurred_at=now)
    if not record_new_events(session, [marker], [None], now):
        return InboundOutcome("duplicate")
    customer_ids = record_inbound(session, message.channel, message.sender, now)
    outcome = InboundOutcome(kind, customer_ids)
    log.info("inbound email from %s: %s", mask_address(message.channel, message.sender), kind)
    if kind == "automatic":  # an out-of-office reply asks nothing of anyone
        return outcome
    if kind == "opt_out":
        keep = load_policy().required_topics()
        for customer_id in customer_ids:
            leave_channel(session, customer_id, message.channel, keep, SOURCE_EMAIL_OPT_OUT)
    owner = reply_owner(session, customer_ids, message.channel)
    text = "\n\n".join(part for part in (subject, words) if part)
    source = SOURCE_EMAIL_OPT_OUT if kind == "opt_out" else SOURCE_EMAIL_REPLY
    feedback = CustomerFeedback(customer_id=owner, channel=message.channel, body=text,
                                source=source if owner is not None else f"{source}:unknown_sender")
    session.add(feedback)
    session.flush()
    outcome.feedback_id = feedback.id
    # "Unsubscribe" alone is said and done; anything more is for a person to read. "Re: <our subject>"
    # is not the customer's.
    theirs = [part for part in ("" if _REPLY_PREFIX.match(subject) else subject, words) if part]
    said_more = not (kind == "opt_out" and all(is_bare_keyword(part) for part in theirs))
    if owner is not None and said_more:
        [task] = open_tasks(session, [TaskRequest(
            customer_id=owner, topic=EMAIL_REPLY_TASK_TOPIC, reason=EMAIL_REPLY_TASK_REASON,
            script=f"The customer replied by email:\n\n{text}", priority=EMAIL_REPLY_TASK_PRIORITY,
        )], now=now)
        session.flush()
        outcome.phone_task_id = task.id
    return outcome
