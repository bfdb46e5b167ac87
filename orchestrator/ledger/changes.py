"""What happens to a claimed ledger row, and the bulk UPDATE that records it.

A provider result maps to exactly one ledger change:

- accepted            -> ``sent`` with the provider's message id;
- ``Transient``       -> ``deferred`` to ``now + max(retry_after, backoff(attempts))``, or ``failed``
                         (``gave_up:attempts`` / ``gave_up:deadline``) once retrying is pointless;
- ``Permanent``       -> ``failed`` with ``permanent:<reason>``;
- ``Permanent(unauthorized)``: the message is fine, the credentials are not. It goes back to the
  queue with its attempt given back (as when an adapter is not configured): retrying it on a
  transient schedule would use up its attempts while nobody fixes the set-up.

Messages decided without a provider call (``settled``), messages handed back unsent
(``released``), messages waiting for their send rate (``paced``) and messages held back from the
customer's quiet hours (``held_for_quiet_hours``) give their claimed attempt back. A paced message
carries its ``pace:<rate>`` code (the latest only), a held one its ``quiet_hours:<window>`` code, so
``explain`` says what it waits for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Session

from channels.base import Permanent, PermanentReason, SendResult, Transient
from orchestrator.ledger.queue import ClaimedMessage
from orchestrator.ledger.retry import RetryPolicy
from orchestrator.ledger.tables import MESSAGE, stored_time
from orchestrator.models import MessageStatus
from orchestrator.privacy import redact_text
from orchestrator.reasons import GAVE_UP, NOT_SENT, PACE, PERMANENT, QUIET_HOURS, TRANSIENT, reason_of

# Outcomes that end a message's journey without a send: their reason joins the row's reason codes.
TERMINAL = (MessageStatus.failed, MessageStatus.suppressed, MessageStatus.cancelled, MessageStatus.reconcile)


@dataclass
class LedgerChange:
    """The new state of one claimed message. ``reason`` is a machine-readable code for failures."""

    message_id: int
    status: MessageStatus
    reason: str | None = None  # e.g. permanent:invalid_address, render_error, gave_up:deadline
    detail: str = ""  # human text, personal data masked
    send_at: datetime | None = None  # deferred: the next attempt
    provider: str | None = None
    provider_message_id: str | None = None
    attempts_delta: int = 0  # -1 gives back an attempt that never reached the provider
    suppress_reason: str | None = None  # permanent: the provider's word for a dead address, if any
    note: str = ""  # words added to the row's explanation (``reason_text``)


@dataclass(frozen=True)
class Failure:
    """A message that ended without being sent (failed or suppressed), for the report and fallbacks."""

    message_id: int
    customer_id: int
    channel: str
    topic: str
    status: str  # "failed" or "suppressed"
    reason: str
    detail: str = ""


def is_unauthorized(result: SendResult) -> bool:
    """The provider refused our credentials: nothing about the message itself is wrong."""
    return isinstance(result.error, Permanent) and result.error.reason is PermanentReason.unauthorized


def unauthorized_text(result: SendResult) -> str:
    detail = result.error.detail if isinstance(result.error, Permanent) else ""
    return f"configuration: unauthorized: {detail}".rstrip(": ")


def change_for_result(
    result: SendResult,
    *,
    attempts: int,
    deadline: datetime | None,
    now: datetime,
    retry: RetryPolicy,
) -> LedgerChange:
    """The ledger change for one provider result; ``attempts`` already counts this attempt."""
    error = result.error
    if result.ok:
        return LedgerChange(
            result.message_id,
            MessageStatus.sent,
            provider=result.provider,
            provider_message_id=result.provider_message_id,
        )
    if is_unauthorized(result):
        return released(result.message_id, unauthorized_text(result), attempts=attempts, deadline=deadline,
                        now=now, retry=retry)
    if isinstance(error, Permanent):
        return LedgerChange(
            result.message_id,
            MessageStatus.failed,
            reason=PERMANENT.code(error.reason.value),
            detail=redact_text(error.detail),
            provider=result.provider,
            suppress_reason=error.suppress_reason,
        )
    if isinstance(error, Transient):
        why, retry_after = error.reason, error.retry_after
    else:
        why, retry_after = f"provider returned status {result.status} without an error", None
    return retry_later(
        result.message_id, why, attempts=attempts, deadline=deadline, now=now, retry=retry,
        retry_after=retry_after, provider=result.provider,
    )


def retry_later(
    message_id: int,
    why: str,
    *,
    attempts: int,
    deadline: datetime | None,
    now: datetime,
    retry: RetryPolicy,
    retry_after: float | None = None,
    provider: str | None = None,
    reason: str = TRANSIENT.code(),
) -> LedgerChange:
    """Deferred to the next attempt, or failed when attempts or the deadline have run out."""
    detail = redact_text(why)
    if attempts >= retry.max_attempts:
        return LedgerChange(
            message_id, MessageStatus.failed, reason=GAVE_UP.code("attempts"),
            detail=f"{attempts} attempts, last: {detail}", provider=provider,
        )
    next_at = now + timedelta(seconds=max(retry_after or 0.0, retry.backoff(attempts)))
    if deadline is not None and next_at > deadline:
        return LedgerChange(
            message_id, MessageStatus.failed, reason=GAVE_UP.code("deadline"),
            detail=f"next attempt would be after the deadline, last: {detail}", provider=provider,
        )
    return LedgerChange(
        message_id, MessageStatus.deferred, reason=reason, detail=detail, send_at=next_at,
        provider=provider,
    )


def released(message_id: int, why: str, *, attempts: int, deadline: datetime | None, now: datetime,
             retry: RetryPolicy) -> LedgerChange:
    """A claimed message that never reached the provider: back to the queue, its attempt given back."""
    change = retry_later(message_id, why, attempts=attempts - 1, deadline=deadline, now=now, retry=retry,
                         reason=NOT_SENT.code())
    change.attempts_delta = -1
    return change


def paced(message_id: int, reason: str, send_at: datetime, detail: str = "") -> LedgerChange:
    """Deferred until ``send_at``, when its rate (``reason``: ``pace:<rate name>``) lets it go."""
    return LedgerChange(message_id, MessageStatus.deferred, reason=reason, detail=detail, send_at=send_at,
                        attempts_delta=-1)


def slowed_down(change: LedgerChange, reason: str, retry_after: float | None, now: datetime, *,
                attempts: int, retry: RetryPolicy) -> LedgerChange:
    """A provider's 429 (``change`` from ``change_for_result``): the message waits ``retry_after``
    (not the error backoff) for its lane, ``reason`` ``pace:<rate>``, while attempts remain."""
    if change.status is not MessageStatus.deferred or attempts >= retry.max_attempts:
        return change
    return LedgerChange(change.message_id, MessageStatus.deferred, reason=reason, detail=change.detail,
                        send_at=now + timedelta(seconds=retry_after if retry_after is not None else 1.0),
                        provider=change.provider)


def held_for_quiet_hours(m: ClaimedMessage, reason: str, until: datetime, note: str) -> LedgerChange:
    """About to go out inside the customer's quiet hours (``reason``: ``quiet_hours:<window>``):
    deferred until they end, its claimed attempt given back, ``note`` added to its explanation."""
    return LedgerChange(m.id, MessageStatus.deferred, reason=reason, send_at=until, attempts_delta=-1,
                        note=note)


def is_paced(change: LedgerChange) -> bool:
    return change.status is MessageStatus.deferred and reason_of(change.reason or "") is PACE


def _waits_without_error(change: LedgerChange) -> bool:
    """Deferred for its rate or for quiet hours: nothing went wrong, the row says what it waits for."""
    return change.status is MessageStatus.deferred and reason_of(change.reason or "") in (PACE, QUIET_HOURS)


def settled(m: ClaimedMessage, status: MessageStatus, reason: str, detail: str, *, attempted: bool = False
            ) -> LedgerChange:
    """A message decided without the provider's answer; unless the provider was called, its
    claimed attempt is given back."""
    return LedgerChange(m.id, status, reason=reason, detail=redact_text(detail),
                        attempts_delta=0 if attempted else -1)


def error_text(change: LedgerChange) -> str | None:
    if not change.reason:
        return None
    return f"{change.reason}: {change.detail}" if change.detail else change.reason


def record_changes(session: Session, claimed: Mapping[int, ClaimedMessage], changes: list[LedgerChange],
                   now: datetime) -> None:
    """Writes the changes of claimed messages (one executemany UPDATE, in the caller's transaction)."""
    rows, noted = [], []  # rows with a note also rewrite the explanation (one UPDATE per column set)
    for change in changes:
        m = claimed[change.message_id]
        codes = list(m.reason_codes)
        if change.status in TERMINAL and change.reason:
            codes.append(change.reason)
        waits = _waits_without_error(change)
        kept_error = waits and change.attempts_delta
        if waits and change.reason:  # what it waits for now, not every rate it ever waited for
            codes = [c for c in codes if reason_of(c) is not PACE and c != change.reason] + [change.reason]
        values = row_values(
            m.id, change.status, now,
            send_at=change.send_at or m.send_at,
            provider=change.provider or m.provider,
            provider_message_id=change.provider_message_id or m.provider_message_id,
            sent_at=now if change.status is MessageStatus.sent else m.sent_at,
            # A message that only waited (its rate, quiet hours) keeps its last error; a 429 is one.
            last_error=m.last_error if kept_error else error_text(change) or m.last_error,
            reason_codes=codes,
            attempts=m.attempts + change.attempts_delta,
        )
        if change.note:
            values["b_reason_text"] = f"{m.reason_text or ''} {change.note}".strip()
            noted.append(values)
        else:
            rows.append(values)
    update_in_flight(session, rows)
    update_in_flight(session, noted)


_JSON = frozenset(c.name for c in MESSAGE.c if isinstance(c.type, JSON))  # written as JSON text


def update_in_flight(session: Session, rows: list[dict[str, Any]]) -> None:
    """One executemany UPDATE; every row carries the same columns (``b_<column>`` plus ``b_id``).

    Only rows still in flight change (``reconcile`` included: a late but real provider answer
    settles a message the lease had given up on). The rows go straight to the driver: SQLAlchemy's
    per-value type processing cost more than the UPDATE itself at a thousand rows a batch.
    """
    if not rows:
        return
    conn = session.connection()
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    columns = [key[2:] for key in rows[0] if key != "b_id"]
    for column in columns:
        if column not in MESSAGE.c:
            raise ValueError(f"message has no column {column!r}")
    assignments = ", ".join(f"{c} = {mark}{'::json' if c in _JSON and not sqlite else ''}" for c in columns)
    in_flight = ", ".join(f"'{s.value}'" for s in (MessageStatus.sending, MessageStatus.reconcile))
    sql = f"UPDATE message SET {assignments} WHERE id = {mark} AND status IN ({in_flight})"
    keys = [(f"b_{c}", c) for c in columns]
    times: dict[datetime, Any] = {}  # a batch's rows share a few times (its "now"): each converted once
    params = [(*(_stored(c, row[key], sqlite, times) for key, c in keys), row["b_id"]) for row in rows]
    conn.exec_driver_sql(sql, params)


def _stored(column: str, value: Any, sqlite: bool, times: dict[datetime, Any]) -> Any:
    """A value as the driver takes it for ``column``."""
    if isinstance(value, datetime):
        if value not in times:
            times[value] = stored_time(value, sqlite)
        return times[value]
    if column in _JSON:
        return json.dumps(value)
    if isinstance(value, StrEnum):
        return value.value
    return value


def row_values(message_id: int, status: MessageStatus, now: datetime, **values: Any) -> dict[str, Any]:
    """The parameters of one row for ``update_in_flight``."""
    return {"b_id": message_id, "b_status": status.value, "b_updated_at": now,
            **{f"b_{col}": value for col, value in values.items()}}
