"""Erasing a customer's personal data on request (the right to erasure), in one transaction.

Every table it touches is in ``audience.personal_data``, the map of where personal data lives.

Goes: name, email, phone, X ids, attributes, customer-since date, time zone and locale (the row keeps
its external id, so a later import finds it); addresses on other channels (``contact_point``); the
facts of every ledger row; the customer's own words (SMS replies, survey comments: the scores stay);
call scripts and agents' notes; what providers reported about the messages (the events' payloads:
their kinds and times stay, so reports still count them); the local outbox's copies. What had not
gone out is cancelled, calls not made are closed.

Stays, naming no one: the ledger rows (when, which channel, which template, why), conversions, and
the consent and preference history, which ends with an opt-out from everything and do-not-contact:
the proof that we must not write again, and what keeps a re-import of the same customer from
undoing it (an import applies only what differs from what it said last). Suppressed addresses stay
too, with their history but without operators' notes: they keep bounced and complaining addresses
from being mailed by anyone's import.

Providers keep their own copies of what was sent (SendGrid, Twilio, X): erase there as well.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlmodel import Session, col

from orchestrator.audience.personal_data import find_customer
from orchestrator.consent import ANY, opt_out, update_preferences
from orchestrator.contact_points import addresses_of
from orchestrator.db import session_scope
from orchestrator.ledger.erasure import erase_messages
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import (
    ContactPoint,
    CustomerFeedback,
    DeliveryEvent,
    OutboxEntry,
    PreferenceEvent,
    SuppressionEvent,
    table_of,
    utcnow,
)
from orchestrator.phone_tasks import erase_calls

SOURCE_ERASURE = "erasure"
ERASED_NOTE = "closed: the customer's personal data was erased"

@dataclass(frozen=True)
class Erasure:
    external_id: str
    erased_at: datetime
    messages: int  # ledger rows whose facts were emptied
    cancelled: int  # of them, those that had not gone out
    contact_points: int
    feedback: int
    phone_tasks: int
    delivery_events: int
    outbox_entries: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "erased_at": self.erased_at.isoformat()}


def erased_at(session: Session, customer_id: int) -> datetime | None:
    """When the customer's personal data was last erased, if ever (the audit trail says)."""
    query = select(func.max(col(PreferenceEvent.created_at))).where(
        col(PreferenceEvent.customer_id) == customer_id, col(PreferenceEvent.source) == SOURCE_ERASURE)
    return session.execute(query).scalar_one_or_none()


def erase_customer(external_id: str, *, now: datetime | None = None) -> Erasure:
    """Erases the personal data of the customer with ``external_id``; running it again is harmless."""
    now = now or utcnow()
    with session_scope() as session:
        customer = find_customer(session, external_id, for_update=True)
        assert customer.id is not None  # a stored row
        cid = customer.id
        _forget_notes_on(session, [(ch, a) for ch, a in addresses_of(session, [customer])[cid].items() if a])
        cancelled, messages = erase_messages(session, cid)
        theirs = select(MESSAGE.c.id).where(MESSAGE.c.customer_id == cid)
        events, outbox = table_of(DeliveryEvent), table_of(OutboxEntry)
        points, feedback = table_of(ContactPoint), table_of(CustomerFeedback)
        run = session.connection().execute
        reports = run(update(events).where(events.c.message_id.in_(theirs)).values(payload={})).rowcount
        copies = run(delete(outbox).where(outbox.c.message_id.in_(theirs))).rowcount
        addresses = run(delete(points).where(points.c.customer_id == cid)).rowcount
        words = run(update(feedback).where(feedback.c.customer_id == cid).values(body="")).rowcount
        calls = erase_calls(session, cid, ERASED_NOTE, now=now)
        opt_out(session, cid, ANY, ANY, SOURCE_ERASURE)
        update_preferences(session, cid, SOURCE_ERASURE, do_not_contact=True)
        # Each erasure on the record, even a repeated one.
        session.add(PreferenceEvent(customer_id=cid, changes={"personal_data": "erased"},
                                    source=SOURCE_ERASURE, created_at=now))
        customer.name, customer.email, customer.phone = "", None, None
        customer.x_user_id = customer.x_handle = None
        customer.attributes, customer.customer_since = {}, None
        customer.timezone, customer.locale, customer.updated_at = "UTC", "en", now
        session.add(customer)
    return Erasure(external_id, now, messages, cancelled, addresses, words, calls, reports, copies)


def _forget_notes_on(session: Session, addresses: list[tuple[str, str]]) -> None:
    """Operators' notes in the suppression history of the customer's addresses (they may name them)."""
    if addresses:
        history = table_of(SuppressionEvent)
        session.connection().execute(update(history).where(
            tuple_(history.c.channel, history.c.address).in_(addresses), history.c.note.is_not(None)
        ).values(note=None))
