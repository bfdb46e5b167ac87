"""Survey answers collected in the channel itself, and service recovery after a low one.

A ``feedback_survey`` message whose facts name a ``survey_scale`` (``csat``: 1-5, the default;
``nps``: 0-10) carries one signed, expiring rating link per score in its email, and asks
"Reply 1-5" by SMS. Following a link records the score at once (the page then offers a
comment); a bare number replied by SMS to a recent survey does the same.

Each answer is a ``CustomerFeedback`` row linked to the survey message (and through it to
the incident, campaign or complaint it follows). A changed answer is a new row: the history
stays, and the latest row counts. A low answer (CSAT <= 2, NPS <= 6) opens a service-recovery
phone task with the customer's recent messages and their comment, unless one is already open
for that customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlmodel import Session, col, select

from orchestrator.links import LinkClaims, make_token
from orchestrator.models import Customer, CustomerFeedback, Message, MessageStatus, PhoneTask, utcnow
from orchestrator.phone_tasks import ACTIVE, TaskRequest, open_tasks
from orchestrator.settings import get_settings

SURVEY_TEMPLATE = "feedback_survey"
SMS = "sms"  # a bare number replied by text is an answer
RATING_PURPOSE = "rating"
RATING_TTL_SECONDS = 30 * 24 * 3600  # a survey link stays valid for 30 days
SMS_REPLY_WINDOW = timedelta(days=7)  # a bare number this long after an SMS survey is its answer
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Scale:
    name: str
    scores: range
    low_at_most: int  # answers at or below this open a service-recovery call
    label: str

    def describe(self, score: int) -> str:
        return f"{score} of {self.scores[-1]}"


SCALES = {
    "csat": Scale("csat", range(1, 6), 2, "How satisfied are you? 1 = very unsatisfied, 5 = very satisfied"),
    "nps": Scale("nps", range(0, 11), 6,
                 "How likely are you to recommend us? 0 = not at all, 10 = extremely"),
}
DEFAULT_SCALE = "csat"

RECOVERY_TOPIC = "support"  # the support team calls back, within the support topic's SLA
RECOVERY_REASON = "service recovery: low survey answer"
RECOVERY_PRIORITY = 60  # as a customer's SMS reply: a person waits for us
RECENT_MESSAGES = 5

SOURCE_RATING_LINK = "rating_link"
SOURCE_RATING_PAGE = "rating_page"
SOURCE_SMS_RATING = "sms_rating"


class BadAnswer(ValueError):
    """A rating that cannot be recorded (wrong survey, customer or score); nothing was written."""


def scale_of(message: Message) -> Scale:
    return SCALES.get(str((message.data or {}).get("survey_scale") or DEFAULT_SCALE), SCALES[DEFAULT_SCALE])


def check_scale(name: str) -> str:
    if name not in SCALES:
        raise ValueError(f"unknown survey scale {name!r} (use {', '.join(SCALES)})")
    return name


def rating_token(customer_id: int, message_id: int) -> str:
    return make_token(LinkClaims(RATING_PURPOSE, customer_id, message_id=message_id),
                      ttl_seconds=RATING_TTL_SECONDS)


def rating_links(customer_id: int, message_id: int, scale: str) -> dict[str, str]:
    """``rate_<score>`` -> the one-click URL for each score of the survey's scale."""
    base = f"{get_settings().public_base_url.rstrip('/')}/rate/{quote(rating_token(customer_id, message_id))}"
    return {f"rate_{score}": f"{base}/{score}" for score in SCALES[check_scale(scale)].scores}


def survey_for_claims(session: Session, claims: LinkClaims) -> Message:
    """The survey message a verified rating token names; BadAnswer when it is not this customer's survey."""
    message = session.get(Message, claims.message_id) if claims.message_id is not None else None
    if message is None or message.template != SURVEY_TEMPLATE or message.customer_id != claims.customer_id:
        raise BadAnswer("this link does not belong to a survey of yours")
    return message


def latest_answer(session: Session, message_id: int) -> CustomerFeedback | None:
    return session.exec(
        select(CustomerFeedback).where(col(CustomerFeedback.message_id) == message_id,
                                       col(CustomerFeedback.score).is_not(None))
        .order_by(col(CustomerFeedback.id).desc()).limit(1)
    ).first()


@dataclass
class Answer:
    feedback: CustomerFeedback
    recorded: bool  # False: the same answer again (a repeated click or reply), nothing new written
    phone_task_id: int | None = None


def record_answer(session: Session, survey: Message, score: int, *, channel: str, source: str,
                  comment: str = "", now: datetime | None = None) -> Answer:
    """Records ``score`` (and an optional comment) as the customer's answer to ``survey``."""
    scale = scale_of(survey)
    if score not in scale.scores:
        raise BadAnswer(f"a {scale.name.upper()} score is a whole number from {scale.scores[0]} "
                        f"to {scale.scores[-1]}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise BadAnswer(f"a comment is at most {MAX_COMMENT} characters")
    now = now or utcnow()
    _lock_customer(session, survey.customer_id)
    assert survey.id is not None  # loaded
    latest = latest_answer(session, survey.id)
    if latest is not None and latest.score == score and (not comment or comment == latest.body):
        return Answer(latest, recorded=False)
    feedback = CustomerFeedback(customer_id=survey.customer_id, channel=channel, body=comment, source=source,
                                message_id=survey.id, score=score, scale=scale.name, created_at=now)
    session.add(feedback)
    session.flush()
    answer = Answer(feedback, recorded=True)
    if score <= scale.low_at_most:
        answer.phone_task_id = open_recovery_task(session, survey, feedback, now)
    elif comment:
        _add_comment_to_open_task(session, survey.customer_id, comment)
    return answer


def _lock_customer(session: Session, customer_id: int) -> None:
    """Two answers of one customer at once see each other (PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.exec(select(Customer.id).where(col(Customer.id) == customer_id).with_for_update())


def _open_recovery(session: Session, customer_id: int) -> PhoneTask | None:
    return session.exec(
        select(PhoneTask).where(col(PhoneTask.customer_id) == customer_id,
                                col(PhoneTask.reason) == RECOVERY_REASON,
                                col(PhoneTask.status).in_([s.value for s in ACTIVE]))
        .order_by(col(PhoneTask.id)).limit(1)
    ).first()


def open_recovery_task(session: Session, survey: Message, answer: CustomerFeedback, now: datetime) -> int:
    """The customer's open service-recovery task (its script gains the new answer), or a new one."""
    scale = scale_of(survey)
    said = f"{scale.name.upper()} {scale.describe(answer.score or 0)}"
    if answer.body:
        said += f', comment: "{answer.body}"'
    task = _open_recovery(session, survey.customer_id)
    if task is not None:
        task.script += f"\n\nLater answer: {said}."
        task.updated_at = now
        session.add(task)
        assert task.id is not None  # loaded
        return task.id
    [task] = open_tasks(session, [TaskRequest(
        customer_id=survey.customer_id, topic=RECOVERY_TOPIC, reason=RECOVERY_REASON,
        script=recovery_script(session, survey, said), priority=RECOVERY_PRIORITY)], now=now)
    session.flush()
    assert task.id is not None  # flushed
    return task.id


def _add_comment_to_open_task(session: Session, customer_id: int, comment: str) -> None:
    task = _open_recovery(session, customer_id)
    if task is not None:
        task.script += f'\n\nThe customer added: "{comment}"'
        session.add(task)


def recovery_script(session: Session, survey: Message, said: str) -> str:
    """What the agent reads before calling: the answer, what it follows, the latest messages."""
    recent = session.exec(
        select(Message).where(col(Message.customer_id) == survey.customer_id,
                              col(Message.status).in_([MessageStatus.sent.value,
                                                       MessageStatus.delivered.value]))
        .order_by(col(Message.sent_at).desc().nulls_last(), col(Message.id).desc()).limit(RECENT_MESSAGES)
    ).all()
    lines = [f"The customer answered our survey about {(survey.data or {}).get('survey_subject', 'us')}: "
             f"{said}. Call to put things right.", "", "Their recent messages from us:"]
    for m in recent:
        when = f"{m.sent_at:%Y-%m-%d}" if m.sent_at else "not sent"
        lines.append(f"- {when}: {m.template} ({m.topic}, {m.channel}, {m.tone or 'default tone'})")
    return "\n".join(lines)


# --- SMS replies -----------------------------------------------------------------------------

_BARE_NUMBER = re.compile(r"^\s*(\d{1,2})\s*[.!]?\s*$")


def recent_sms_survey(session: Session, customer_id: int, now: datetime) -> Message | None:
    return session.exec(
        select(Message).where(
            col(Message.customer_id) == customer_id, col(Message.channel) == SMS,
            col(Message.template) == SURVEY_TEMPLATE,
            col(Message.status).in_([MessageStatus.sent.value, MessageStatus.delivered.value]),
            col(Message.sent_at) >= now - SMS_REPLY_WINDOW)
        .order_by(col(Message.sent_at).desc(), col(Message.id).desc()).limit(1)
    ).first()


def answer_from_sms(session: Session, customer_id: int | None, body: str, now: datetime | None = None
                    ) -> Answer | None:
    """A bare number in range, replied to a recent SMS survey, as its answer; None for anything else
    (the reply is then ordinary feedback)."""
    match = _BARE_NUMBER.match(body)
    if match is None or customer_id is None:
        return None
    now = now or utcnow()
    survey = recent_sms_survey(session, customer_id, now)
    if survey is None or int(match.group(1)) not in scale_of(survey).scores:
        return None
    return record_answer(session, survey, int(match.group(1)), channel=SMS,
                         source=SOURCE_SMS_RATING, now=now)
