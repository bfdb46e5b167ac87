"""What customers told us lately, for the people who read it: SMS and email replies, survey answers
and comments, opt-outs in their own words (``CustomerFeedback``), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from orchestrator.inbound.email import SOURCE_EMAIL_OPT_OUT, SOURCE_EMAIL_REPLY
from orchestrator.inbound.sms import SOURCE_SMS_OPT_OUT, SOURCE_SMS_REPLY
from orchestrator.models import Customer, CustomerFeedback, table_of
from orchestrator.policy.explain import message_origins
from orchestrator.surveys import SOURCE_RATING_LINK, SOURCE_RATING_PAGE, SOURCE_SMS_RATING

# What each source of feedback is, for people (a stranger's suffix ``:unknown_sender`` aside).
SOURCES = {
    SOURCE_SMS_REPLY: "SMS reply",
    SOURCE_SMS_OPT_OUT: "opt-out by SMS, in their words",
    SOURCE_EMAIL_REPLY: "email reply",
    SOURCE_EMAIL_OPT_OUT: "opt-out by email reply",
    SOURCE_RATING_LINK: "survey answer (link)",
    SOURCE_RATING_PAGE: "survey answer (page)",
    SOURCE_SMS_RATING: "survey answer (SMS)",
}


def source_words(source: str) -> str:
    base, unknown = source.removesuffix(":unknown_sender"), source.endswith(":unknown_sender")
    words = SOURCES.get(base, base)
    return f"{words}, from an unknown sender" if unknown else words


def recent_feedback(session: Session, since: datetime, *, channel: str | None = None,
                    limit: int = 50) -> list[dict[str, Any]]:
    """Feedback received at or after ``since``, newest first, with who said it and what it answers."""
    f, c = table_of(CustomerFeedback), table_of(Customer)
    query = (select(f, c.c.external_id).select_from(f.outerjoin(c, c.c.id == f.c.customer_id))
             .where(f.c.created_at >= since).order_by(f.c.created_at.desc(), f.c.id.desc()).limit(limit))
    if channel is not None:
        query = query.where(f.c.channel == channel)
    rows = session.connection().execute(query).all()
    origins = message_origins(session, [r.message_id for r in rows if r.message_id is not None])
    return [{"id": r.id, "received_at": r.created_at.isoformat(), "customer": r.external_id,
             "channel": r.channel, "source": r.source, "kind": source_words(r.source), "score": r.score,
             "scale": r.scale, "words": r.body, "answers": origins.get(r.message_id or 0)}
            for r in rows]
