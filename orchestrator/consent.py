"""Recording what customers and providers tell us: consent, preferences, suppressed addresses.

Consent and preference changes are appended (audit trail), never overwritten silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from channels.channel_set import installed_channels
from orchestrator.db import member_of
from orchestrator.models import (
    ConsentEvent,
    ConsentState,
    ContactPreference,
    PreferenceEvent,
    Suppression,
    SuppressionEvent,
    table_of,
    utcnow,
)

# Core tables: for statements built once per address, the ORM's per-statement work was most of their cost.
_SUPPRESSION = table_of(Suppression)
_SUPPRESSION_HISTORY = table_of(SuppressionEvent)

ANY = "*"
FREQUENCIES = ("any", "daily", "weekly", "monthly")


def record_consent(
    session: Session, customer_id: int, channel: str, topic: str, state: str, source: str
) -> bool:
    """Appends a consent change; returns False (and writes nothing) when it changes nothing."""
    state = ConsentState(state).value
    said = current_consent(session, [customer_id]).get((customer_id, channel, topic), ConsentState.cleared)
    if said == state:
        return False
    session.add(
        ConsentEvent(customer_id=customer_id, channel=channel, topic=topic, state=state, source=source)
    )
    return True


def current_consent(
    session: Session, customer_ids: Iterable[int], source: str | None = None
) -> dict[tuple[int, str, str], str]:
    """The consent state in force for each (customer, channel, topic) that has any record.

    ``channel`` and ``topic`` may be ``*``. One query for the whole chunk of customers. With
    ``source``, what that source said last instead (an import compares the file with it).
    """
    ids = list(customer_ids)
    if not ids:
        return {}
    latest = select(func.max(col(ConsentEvent.id))).where(
        member_of(session, col(ConsentEvent.customer_id), ids))
    if source is not None:
        latest = latest.where(col(ConsentEvent.source) == source)
    latest = latest.group_by(
        col(ConsentEvent.customer_id), col(ConsentEvent.channel), col(ConsentEvent.topic))
    rows = session.execute(
        select(col(ConsentEvent.customer_id), col(ConsentEvent.channel), col(ConsentEvent.topic),
               col(ConsentEvent.state))
        .where(col(ConsentEvent.id).in_(latest))
    ).all()
    return {(cid, ch, tp): st for cid, ch, tp, st in rows if st != ConsentState.cleared}


def undo_opt_outs(session: Session, customer_id: int, channel: str, by: tuple[str, ...], source: str) -> bool:
    """Undoes the opt-outs on ``channel`` that sources starting with one of ``by`` recorded, and
    only those: each (channel, topic) whose latest record is such an opt-out goes back to what
    it was before it (``cleared`` where nothing was). An opt-out recorded elsewhere (an import,
    the preference centre) holds. Returns True when anything changed."""
    events = session.execute(
        select(col(ConsentEvent.topic), col(ConsentEvent.state), col(ConsentEvent.source))
        .where(col(ConsentEvent.customer_id) == customer_id, col(ConsentEvent.channel) == channel)
        .order_by(col(ConsentEvent.id))
    ).all()
    history: dict[str, list[tuple[str, str]]] = {}
    for topic, state, by_source in events:
        history.setdefault(topic, []).append((state, by_source))
    changed = False
    for topic, said in history.items():
        state, by_source = said[-1]
        if state != ConsentState.opted_out or not by_source.startswith(by):
            continue
        earlier = [s for s, src in said[:-1] if not (s == ConsentState.opted_out and src.startswith(by))]
        before = earlier[-1] if earlier else ConsentState.cleared
        changed |= record_consent(session, customer_id, channel, topic, before, source)
    return changed


def consent_allows(
    consent: dict[tuple[int, str, str], str], customer_id: int, channel: str, topic: str,
    opt_in_required: bool = False,
) -> bool:
    """The most specific record wins: (channel, topic) > (channel, *) > (*, topic) > (*, *).

    No record means allowed: consent is collected at sign-up and imported with customers;
    marketing topics that need an explicit opt-in are the policy's business. A channel whose
    spec requires opt-in (WhatsApp) is allowed only by an opt-in recorded for that channel.
    """
    for key in ((channel, topic), (channel, ANY), (ANY, topic), (ANY, ANY)):
        state = consent.get((customer_id, *key))
        if state is not None:
            if state != ConsentState.opted_in:
                return False
            if opt_in_required and key[0] == ANY:
                continue  # an opt-in for every channel is not an opt-in for this one
            return True
    return not opt_in_required


def opt_in_required(channel: str) -> bool:
    """Whether ``channel`` needs an opt-in of its own (its adapter's spec says so)."""
    spec = installed_channels().get(channel)
    return spec is not None and spec.opt_in_required


def suppress_address(session: Session, channel: str, address: str, reason: str, source: str,
                     note: str | None = None) -> bool:
    """Marks an address unusable (bounce, spam report, invalid number). Idempotent, and safe
    against a concurrent writer: of two webhooks about one address (a bounce and a drop, "STOP"
    and "stop."), one inserts and the other waits for it and changes nothing, instead of both
    inserting and the second failing on the unique key. Returns whether this call inserted (then
    the suppression history says so too)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = (
        insert(_SUPPRESSION)
        .values(channel=channel, address=address, reason=reason, source=source, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "address"])
        .returning(_SUPPRESSION.c.id)
    )
    connection = session.connection()
    if connection.execute(statement).first() is None:
        return False
    # Written at once on the same connection: a caller's savepoint holds both rows or neither.
    connection.execute(_SUPPRESSION_HISTORY.insert().values(
        channel=channel, address=address, action="added", reason=reason, source=source, note=note,
        created_at=now))
    return True


def lift_suppression(session: Session, channel: str, address: str, source: str, *, note: str | None = None,
                     reasons: Iterable[str] | None = None) -> Suppression | None:
    """Takes an address off the suppression list (only if suppressed for one of ``reasons``, when
    given) and records it in the history. Returns the row lifted, or None."""
    query = select(Suppression).where(col(Suppression.channel) == channel,
                                      col(Suppression.address) == address)
    if reasons is not None:
        query = query.where(col(Suppression.reason).in_(list(reasons)))
    row = session.scalars(query.with_for_update()).first()
    if row is None:
        return None
    session.delete(row)
    session.add(SuppressionEvent(channel=channel, address=address, action="lifted", reason=row.reason,
                                 source=source, note=note, created_at=utcnow()))
    return row


def suppressed_addresses(session: Session, channel: str, addresses: Iterable[str]) -> set[str]:
    addrs = [a for a in addresses if a]
    if not addrs:
        return set()
    return set(session.scalars(
        select(col(Suppression.address))
        .where(col(Suppression.channel) == channel, member_of(session, col(Suppression.address), addrs))
    ))


def update_preferences(session: Session, customer_id: int, source: str, **changes: Any) -> ContactPreference:
    """Applies preference changes and appends what changed to the audit trail."""
    allowed = {"preferred_channels", "frequency", "quiet_start", "quiet_end", "do_not_contact"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(f"unknown preference field(s): {', '.join(sorted(unknown))}")
    if "frequency" in changes and changes["frequency"] not in FREQUENCIES:
        raise ValueError(f"frequency must be one of {', '.join(FREQUENCIES)}")
    pref = session.get(ContactPreference, customer_id) or ContactPreference(customer_id=customer_id)
    diff = {k: v for k, v in changes.items() if getattr(pref, k) != v}
    for key, value in diff.items():
        setattr(pref, key, value)
    if diff:
        pref.updated_at = utcnow()
        session.add(pref)
        session.add(PreferenceEvent(customer_id=customer_id, changes=diff, source=source))
    return pref


def opt_out(session: Session, customer_id: int, channel: str, topic: str, source: str) -> bool:
    """Opts the customer out of ``topic`` on ``channel`` (either may be ``*``), and makes it hold.

    The most specific consent record wins, so an older, narrower opt-in (say "SMS marketing:
    yes") would beat a new broad opt-out ("no SMS"). Such records are overridden with
    opt-outs of their own. Returns True when anything changed.
    """
    changed = record_consent(session, customer_id, channel, topic, ConsentState.opted_out, source)
    session.flush()
    consent = current_consent(session, [customer_id])
    # "Everything" overrides the broad records too: "SMS, every topic: yes" and "every channel,
    # marketing: yes" would each beat "every channel, every topic: no".
    channels = [channel] if channel != ANY else [ANY, *installed_channels()]
    topics = [topic] if topic != ANY else [ANY, *sorted({t for (_, _, t) in consent if t != ANY})]
    for ch in channels:
        for tp in topics:
            if consent_allows(consent, customer_id, ch, tp, opt_in_required(ch)):
                changed |= record_consent(session, customer_id, ch, tp, ConsentState.opted_out, source)
    return changed


def opt_in(session: Session, customer_id: int, channel: str, topic: str, source: str) -> bool:
    """The customer asked to hear from us again on ``channel`` about ``topic``."""
    return record_consent(session, customer_id, channel, topic, ConsentState.opted_in, source)


def keep_consent(
    session: Session, customer_id: int, channels: Iterable[str], topics: Iterable[str]
) -> Callable[[str], None]:
    """Remembers whether each of ``topics`` may reach the customer on ``channels``; the
    returned function restores that after a broad channel opt-out, so leaving a channel
    does not silence those topics there (nor re-enable what was opted out before)."""
    before = current_consent(session, [customer_id])
    allowed = {(ch, t): consent_allows(before, customer_id, ch, t, opt_in_required(ch))
               for ch in channels for t in topics}

    def restore(source: str) -> None:
        session.flush()
        after = current_consent(session, [customer_id])
        for (ch, t), was_allowed in allowed.items():
            if consent_allows(after, customer_id, ch, t, opt_in_required(ch)) != was_allowed:
                state = ConsentState.opted_in if was_allowed else ConsentState.opted_out
                record_consent(session, customer_id, ch, t, state, source)

    return restore


def leave_channel(session: Session, customer_id: int, channel: str, keep: Iterable[str], source: str) -> None:
    """Opts the customer out of every message on ``channel`` but those of the ``keep`` topics
    (required notices such as security alerts), which keep the consent they had."""
    restore = keep_consent(session, customer_id, [channel], keep)
    opt_out(session, customer_id, channel, ANY, source)
    restore(source)
