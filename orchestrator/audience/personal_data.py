"""Where a customer's personal data lives: every table with a customer or message column, what a
customer's export shows of it (``audience.export``) and what erasing them does to it
(``audience.erasure``). A table that starts holding such a column must be added here:
``tests/test_customer_personal_data.py`` fails for a table this map does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from orchestrator.db import is_sqlite
from orchestrator.models import Customer


@dataclass(frozen=True)
class Holding:
    export: str  # the section of a customer's export that shows it
    erasure: str  # what erasure does with it


WHERE_IT_LIVES = {
    "customer": Holding("profile", "personal fields cleared; the external id stays"),
    "contact_point": Holding("contact_points", "deleted"),
    "message": Holding("messages", "facts emptied, what had not gone out cancelled (ledger.erasure)"),
    "customer_feedback": Holding("feedback", "the customer's words emptied, scores kept"),
    "phone_task": Holding("phone_tasks", "scripts and notes emptied, calls not made closed"),
    "delivery_event": Holding("delivery_events", "provider payloads emptied, kinds and times kept"),
    "outbox_entry": Holding("outbox", "deleted"),
    "consent_event": Holding("consent_history", "kept: ends with an opt-out from everything"),
    "preference_event": Holding("preference_history", "kept: ends with do-not-contact"),
    "contact_preference": Holding("preferences", "kept: do-not-contact"),
    "conversion_event": Holding("conversions", "kept: names no one"),
}


class UnknownCustomer(LookupError):
    pass


def find_customer(session: Session, external_id: str, *, for_update: bool = False) -> Customer:
    """The customer with ``external_id`` (``for_update``: its row locked on PostgreSQL, where an import
    writing the same customer then waits), or ``UnknownCustomer``."""
    query = select(Customer).where(col(Customer.external_id) == external_id)
    if for_update and not is_sqlite(session.get_bind()):
        query = query.with_for_update()
    customer = session.exec(query).first()
    if customer is None or customer.id is None:
        raise UnknownCustomer(f"no customer with external id {external_id!r}")
    return customer
