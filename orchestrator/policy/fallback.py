"""Fallback: a message that can never go out on its channel tries the topic's next channel.

Dispatch reports every message that ended ``failed`` or ``suppressed`` (``Failure``); this module
decides which of them deserve another channel and reserves that attempt as a new ledger row:

- only topics whose policy says ``when_capped: fallback`` (urgent news: outage, security,
  transactional); a marketing message that bounced is simply not sent;
- only reasons that concern the address or the channel (invalid or blocked address, opted out
  on that channel, no address, suppressed address, a conversation window that is closed); a
  render error or a missed deadline would fail on the next channel just the same;
- the new row's dedupe key is the original's plus ``>fallback:<failed channel>``, so a re-run or
  a retried task finds it and never creates (or sends) a second one, and the chain of keys says
  which channels were already tried;
- the decision is the policy's as usual (consent, quiet hours, caps as the topic allows),
  restricted to the channels not tried yet; its reasons start with ``fallback:sms->email``.

A failure may come after the send: a provider that accepted a message can report later that it
failed (a Twilio status callback with a WhatsApp 63016 or 63003). The event's handler passes such
a late failure to ``fallback_in`` in its own transaction, so the event, the failed row and the
fallback row are written together or not at all; the same dedupe key makes a repeated or
concurrent report find the fallback row already there.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlmodel import Session

from orchestrator.db import get_engine
from orchestrator.ledger.changes import Failure
from orchestrator.ledger.reservations import put_reason_first
from orchestrator.ledger.tables import MESSAGE
from orchestrator.policy.config import Policy, WhenCapped, load_policy
from orchestrator.policy.intents import Intent
from orchestrator.policy.reserve import ReserveResult, reserve_in
from orchestrator.reasons import NO_ADDRESS, OPTED_OUT, PERMANENT, SUPPRESSED, fallback_code

SEPARATOR = ">fallback:"
MAX_KEY_LENGTH = 200  # Message.dedupe_key
# Failure reasons that say "not this channel", not "not this message".
FALLBACK_REASONS = (
    PERMANENT.code("invalid_address"),
    PERMANENT.code("blocked"),
    PERMANENT.code("unsubscribed"),
    NO_ADDRESS.code(""),
    SUPPRESSED.code(""),
    OPTED_OUT,
    PERMANENT.code("outside_window"),  # WhatsApp outside its 24-hour window, no approved template
)


def warrants_fallback(failure: Failure, policy: Policy) -> bool:
    """Whether the policy sends this failed message through another channel."""
    topic = policy.topics.get(failure.topic)
    return (
        topic is not None
        and topic.when_capped is WhenCapped.fallback
        and failure.channel != "phone"  # a call is an extra contact, never the only one
        and failure.reason.startswith(FALLBACK_REASONS)
    )


def tried_channels(dedupe_key: str, channel: str) -> list[str]:
    """Channels already used for this message: those named in the key's fallback chain, then this one."""
    return [*dedupe_key.split(SEPARATOR)[1:], channel]


def fallback_intents(session: Session, failures: Iterable[Failure], policy: Policy
                     ) -> list[tuple[Intent, Failure]]:
    """The new intents (with the failure each answers) for the failures that warrant one."""
    wanted = {f.message_id: f for f in failures if warrants_fallback(f, policy)}
    if not wanted:
        return []
    m = MESSAGE.c
    rows = session.connection().execute(
        select(m.id, m.dedupe_key, m.customer_id, m.topic, m.channel, m.template, m.tone, m.data,
               m.deadline, m.campaign_id, m.incident_id).where(m.id.in_(sorted(wanted)))
    ).all()
    out: list[tuple[Intent, Failure]] = []
    for row in rows:
        tried = tried_channels(row.dedupe_key, row.channel)
        remaining = [ch for ch in policy.topic(row.topic).channels if ch not in tried]
        key = f"{row.dedupe_key}{SEPARATOR}{row.channel}"
        if not remaining or len(key) > MAX_KEY_LENGTH:
            continue
        intent = Intent(
            customer_id=row.customer_id, topic=row.topic, template=row.template, dedupe_key=key,
            data=dict(row.data or {}), tone=row.tone, deadline=row.deadline, campaign_id=row.campaign_id,
            incident_id=row.incident_id, channels=remaining,
        )
        out.append((intent, wanted[row.id]))
    return out


def reserve_fallbacks(failures: Iterable[Failure], *, now: datetime | None = None,
                      policy: Policy | None = None, url: str | None = None) -> ReserveResult:
    """Reserves the next-channel attempt for every failure that warrants one (idempotent), in a
    transaction of its own."""
    policy = policy or load_policy()
    failures = list(failures)
    if not any(warrants_fallback(f, policy) for f in failures):
        return ReserveResult()
    with Session(get_engine(url)) as session, session.begin():
        return fallback_in(session, failures, now or datetime.now(UTC), policy)


def fallback_in(session: Session, failures: Iterable[Failure], now: datetime, policy: Policy
                ) -> ReserveResult:
    """``reserve_fallbacks`` in the caller's transaction."""
    pairs = fallback_intents(session, failures, policy)
    if not pairs:
        return ReserveResult()
    result = reserve_in(session, [intent for intent, _ in pairs], now, policy)
    _label(session, result, {intent.dedupe_key: failure for intent, failure in pairs})
    return result


def _label(session: Session, result: ReserveResult, failure_by_key: dict[str, Failure]) -> None:
    """Puts ``fallback:<from>-><to>`` and the failure first in each new row's reasons."""
    labels: dict[int, tuple[str, str]] = {}
    for r in result.rows:
        if r.status == "duplicate" or r.message_id is None:
            continue
        failure = failure_by_key[r.dedupe_key]
        labels[r.message_id] = (fallback_code(failure.channel, r.channel),
                                f"Fell back from {failure.channel} ({failure.reason}) to {r.channel}.")
    put_reason_first(session, labels)
