"""The funnel of a slice of the ledger, counted in the database with grouped SQL.

One query counts every stage per (channel, tone, template, locale, segment[, variant]) group:
ledger statuses for what we did (sent, delivered, bounced, failed), delivery events for what
happened next (human opens, machine opens, clicks, drops, spam reports, unsubscribes) and the
customers' replies. Breakdowns and totals are sums over those groups, so no row of the ledger
is ever looped over in Python. Counts are of messages: a message opened five times is one
unique open.

Machine opens (privacy proxies such as Apple Mail Privacy Protection fetch every image; SendGrid
marks them ``sg_machine_open``) are counted apart and are not opens.

A reply is a customer's feedback (an SMS reply, a survey answer) on the channel of a message
they received within ``REPLY_WINDOW`` before it; it belongs to the latest such message. An SMS
STOP belongs to a text the same way, and counts as an unsubscribe from it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from channels.events import EventKind
from orchestrator.consent import ANY
from orchestrator.inbound.sms import SOURCE_SMS_KEYWORD
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import (
    Campaign,
    ConsentEvent,
    ConsentState,
    CustomerFeedback,
    DeliveryEvent,
    Incident,
    MessageStatus,
    PhoneTask,
    table_of,
)
from orchestrator.reasons import says_why

M = MESSAGE
E = table_of(DeliveryEvent)
C = table_of(Campaign)
I = table_of(Incident)  # noqa: E741
F = table_of(CustomerFeedback)
T = table_of(PhoneTask)
CE = table_of(ConsentEvent)

REPLY_WINDOW = timedelta(days=7)
NONE_LABEL = "(none)"

# The stages counted per message, in funnel order (audience and the phone tasks come apart).
STAGES = ("messages", "planned", "pending", "deferred", "suppressed", "cancelled", "sent", "delivered",
          "opened", "machine_opened", "clicked", "bounced", "dropped", "spam_reports", "unsubscribed",
          "failed", "reconcile", "replies")

# Events that say something about a message after it left, by the stage they count toward.
_EVENT_STAGES = {"opened": EventKind.open, "machine_opened": EventKind.machine_open,
                 "clicked": EventKind.click, "dropped": EventKind.dropped,
                 "spam_reports": EventKind.spam_report, "unsubscribed": EventKind.unsubscribe}


def dimensions() -> dict[str, ColumnElement[Any]]:
    """What a report breaks down by; ``variant`` once the ledger records experiment variants."""
    dims: dict[str, ColumnElement[Any]] = {
        "channel": M.c.channel, "tone": M.c.tone, "template": M.c.template, "locale": M.c.locale,
        "segment": func.coalesce(C.c.segment, I.c.segment),
    }
    if "variant" in M.c:
        dims["variant"] = M.c.variant
    return dims


def _events_per_message(where: ColumnElement[bool]):
    flags = [func.max(case((E.c.kind == kind.value, 1), else_=0)).label(stage)
             for stage, kind in _EVENT_STAGES.items()]
    return (select(E.c.message_id.label("mid"), *flags)
            .select_from(E.join(M, M.c.id == E.c.message_id))
            .where(where, E.c.kind.in_([k.value for k in _EVENT_STAGES.values()]))
            .group_by(E.c.message_id).subquery("ev"))


def _window_start(column, dialect: str):
    if dialect == "sqlite":  # datetimes are ISO text there
        return func.strftime("%Y-%m-%d %H:%M:%f", column, f"-{int(REPLY_WINDOW.total_seconds())} seconds")
    return column - literal(REPLY_WINDOW)


def _answered_message(customer, channel, at, dialect: str):
    """The latest message sent to ``customer`` on ``channel`` within REPLY_WINDOW before ``at``."""
    m2 = M.alias("answered")
    return (select(m2.c.id)
            .where(m2.c.customer_id == customer, m2.c.channel == channel,
                   m2.c.sent_at.is_not(None), m2.c.sent_at <= at, m2.c.sent_at > _window_start(at, dialect))
            .order_by(m2.c.sent_at.desc(), m2.c.id.desc()).limit(1).scalar_subquery())


def _replied_messages(dialect: str):
    """The message each feedback row answers (see the module docstring), once per message."""
    latest = _answered_message(F.c.customer_id, F.c.channel, F.c.created_at, dialect).correlate(F)
    answered = func.coalesce(F.c.message_id, latest) if "message_id" in F.c else latest
    attributed = select(answered.label("mid")).where(F.c.customer_id.is_not(None)).subquery("fb")
    return (select(attributed.c.mid).where(attributed.c.mid.is_not(None))
            .group_by(attributed.c.mid).subquery("rp"))


def _stopped_messages(dialect: str):
    """The text each STOP answers, once per message: STOP is recorded as an SMS opt-out by keyword,
    and the message it answers, like a reply's, is the latest text before it."""
    latest = _answered_message(CE.c.customer_id, CE.c.channel, CE.c.created_at, dialect).correlate(CE)
    stops = (select(latest.label("mid"))
             .where(CE.c.source == SOURCE_SMS_KEYWORD, CE.c.channel == "sms", CE.c.topic == ANY,
                    CE.c.state == ConsentState.opted_out.value).subquery("stops"))
    return select(stops.c.mid).where(stops.c.mid.is_not(None)).group_by(stops.c.mid).subquery("st")


def _with_segment(source):
    return source.outerjoin(C, C.c.id == M.c.campaign_id).outerjoin(I, I.c.id == M.c.incident_id)


def _count_by_group(session: Session, messages, where: ColumnElement[bool],
                    dims: dict[str, ColumnElement[Any]], extra: ColumnElement[bool] | None = None
                    ) -> dict[tuple[Any, ...], int]:
    """Messages of a (small) set, per group: the set leads the join."""
    query = (select(*dims.values(), func.count())
             .select_from(_with_segment(messages.join(M, M.c.id == messages.c.mid)))
             .where(where, *([extra] if extra is not None else [])).group_by(*dims.values()))
    return {tuple(row[:-1]): int(row[-1]) for row in session.execute(query).all()}


def _count(condition: ColumnElement[bool]):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def grouped_counts(session: Session, where: ColumnElement[bool],
                   dims: dict[str, ColumnElement[Any]] | None = None) -> list[dict[str, Any]]:
    """Every stage counted per group of ``dims`` (all of ``dimensions()`` by default)."""
    dims = dimensions() if dims is None else dims
    ev = _events_per_message(where)
    s = M.c.status
    stages = {
        "messages": func.count(),
        "planned": _count(s != MessageStatus.suppressed.value),
        "pending": _count(s.in_([MessageStatus.planned.value, MessageStatus.sending.value])),
        "deferred": _count(s == MessageStatus.deferred.value),
        "suppressed": _count(s == MessageStatus.suppressed.value),
        "cancelled": _count(s == MessageStatus.cancelled.value),
        "sent": _count(M.c.sent_at.is_not(None)),
        "delivered": _count(M.c.delivered_at.is_not(None)),
        **{stage: func.coalesce(func.sum(ev.c[stage]), 0) for stage in _EVENT_STAGES},
        "bounced": _count(s == MessageStatus.bounced.value),
        "failed": _count(s == MessageStatus.failed.value),
        "reconcile": _count(s == MessageStatus.reconcile.value),
    }
    query = (select(*[col.label(f"d_{name}") for name, col in dims.items()],
                    *[cast(expr, Integer).label(stage) for stage, expr in stages.items()])
             .select_from(_with_segment(M).outerjoin(ev, ev.c.mid == M.c.id))
             .where(where).group_by(*dims.values()))
    dialect = session.get_bind().dialect.name
    replies = _count_by_group(session, _replied_messages(dialect), where, dims)
    # Texts answered STOP count as unsubscribed, unless a provider event already said so.
    unsubscribed_event = (select(E.c.id)
                          .where(E.c.message_id == M.c.id, E.c.kind == EventKind.unsubscribe.value).exists())
    stopped = _count_by_group(session, _stopped_messages(dialect), where, dims, ~unsubscribed_event)
    rows = []
    for row in session.execute(query).mappings():
        key = tuple(row[f"d_{name}"] for name in dims)
        group = {name: NONE_LABEL if value is None else value for name, value in zip(dims, key, strict=True)}
        counts = {stage: int(row[stage]) for stage in stages}
        counts["unsubscribed"] += stopped.get(key, 0)
        rows.append({"group": group, **counts, "replies": replies.get(key, 0)})
    return rows


def sum_stages(groups: list[dict[str, Any]]) -> dict[str, int]:
    return {stage: sum(g[stage] for g in groups) for stage in STAGES}


def audience(session: Session, where: ColumnElement[bool]) -> int:
    """Distinct customers the slice made a decision about."""
    return int(session.execute(select(func.count(func.distinct(M.c.customer_id))).where(where)).scalar() or 0)


def reasons(session: Session, where: ColumnElement[bool], status: MessageStatus) -> dict[str, int]:
    """Messages per reason code among those with ``status`` (a message may carry several): only the
    codes that say why they stand there, not how they would go (``route:sms``)."""
    dialect = session.get_bind().dialect.name
    elements = func.json_each if dialect == "sqlite" else func.json_array_elements_text
    code = elements(M.c.reason_codes).table_valued("value").alias("code")
    query = (select(code.c.value, func.count()).select_from(M).join(code, true())
             .where(where, M.c.status == status.value).group_by(code.c.value))
    found = sorted(session.execute(query).all(), key=lambda r: (-r[1], r[0]))
    return {str(value): int(n) for value, n in found if says_why(str(value), status.value)}


def phone_tasks(session: Session, where: ColumnElement[bool]) -> dict[str, int]:
    """Tasks for agents opened by the slice's messages, and those done before they fell due."""
    done_in_time = and_(T.c.status == "done", T.c.updated_at <= T.c.due_at)
    row = session.execute(select(func.count(), _count(done_in_time))
                          .select_from(T.join(M, M.c.id == T.c.message_id)).where(where)).one()
    return {"phone_tasks_opened": int(row[0]), "phone_tasks_done_within_sla": int(row[1])}


def _seconds_to_deliver(dialect: str):
    if dialect == "sqlite":
        raw = (func.julianday(M.c.delivered_at) - func.julianday(M.c.sent_at)) * 86400.0
    else:
        raw = func.extract("epoch", M.c.delivered_at - M.c.sent_at)
    # Providers time events to the second while we record the send to the microsecond.
    return case((raw < 0, 0.0), else_=raw)


def delivery_times(session: Session, where: ColumnElement[bool]) -> dict[str, float | int | None]:
    """Seconds from sent to delivered: median and 95th percentile (nearest rank), in SQL.

    The 95th percentile is read from the top (a short descending walk) instead of walking 95%
    of the sorted rows."""
    seconds = _seconds_to_deliver(session.get_bind().dialect.name)
    timed = and_(where, M.c.sent_at.is_not(None), M.c.delivered_at.is_not(None))
    n = int(session.execute(select(func.count()).select_from(M).where(timed)).scalar() or 0)
    result: dict[str, float | int | None] = {"measured": n, "median_seconds": None, "p95_seconds": None}
    if not n:
        return result
    for key, rank, order in (("median_seconds", (n + 1) // 2, seconds),  # ceil(n * p), in integers
                             ("p95_seconds", (n * 95 + 99) // 100, seconds.desc())):
        offset = rank - 1 if key == "median_seconds" else n - rank
        value = session.execute(select(seconds).select_from(M).where(timed)
                                .order_by(order).offset(offset).limit(1)).scalar_one()
        result[key] = round(float(value), 3)
    return result


def channel_health(session: Session, since: datetime) -> dict[str, dict[str, int]]:
    """Per channel, of the messages sent since ``since``: sent, delivered, bounced, spam reports."""
    recent = M.c.sent_at >= since
    counts = {row[0]: {"sent": int(row[1]), "delivered": int(row[2]), "bounced": int(row[3]),
                       "spam_reports": 0}
              for row in session.execute(
                  select(M.c.channel, func.count(), _count(M.c.delivered_at.is_not(None)),
                         _count(M.c.status == MessageStatus.bounced.value))
                  .where(recent).group_by(M.c.channel))}
    spam = (select(M.c.channel, func.count(func.distinct(E.c.message_id)))
            .select_from(E.join(M, M.c.id == E.c.message_id))
            .where(recent, E.c.kind == EventKind.spam_report.value).group_by(M.c.channel))
    for channel, n in session.execute(spam):
        counts[channel]["spam_reports"] = int(n)
    return counts
