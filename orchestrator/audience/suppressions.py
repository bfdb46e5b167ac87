"""The suppression list as operators see and change it: which addresses no message may go to, why,
since when, their history, adding one by hand and lifting one.

Providers and customers fill the list (``consent.suppress_address``: bounces, spam reports, dead
numbers, "STOP"); an operator may add an address (a legal hold, a role address) and lift one
(the customer fixed their mailbox). Two reasons are the customer's own word, not an operator's to
undo: "STOP" (only the customer's "START" lifts it, and the carrier refuses our messages to them
until then) and a spam report (lifted only when the customer asked us to write again).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from channels.events import OPTED_OUT
from orchestrator.consent import lift_suppression, suppress_address
from orchestrator.contact_points import customers_with_address
from orchestrator.models import Customer, Suppression, SuppressionEvent

MANUAL = "manual"
IMPORTED = "imported"
SPAM_REPORT = "spamreport"
SOURCE_OPERATOR = "operator"

# Why an address is on the list, in words (the providers' words, mapped by the adapters).
WORDS = {
    "bounce": "hard bounce: the mailbox does not exist or refuses mail",
    "invalid": "invalid address (the provider dropped it)",
    "invalid_address": "refused by the provider as an invalid address",
    "invalid_number": "not a valid phone number",
    "unknown_number": "the number is not in service",
    "not_mobile": "not a mobile number",
    "landline_or_unreachable_carrier": "a landline, or a carrier that cannot be reached",
    "blocked": "blocked by the recipient or their carrier",
    "not_on_whatsapp": "the number is not on WhatsApp",
    OPTED_OUT: "the customer texted STOP (or the provider says they opted out)",
    SPAM_REPORT: "the recipient marked our email as spam",
    MANUAL: "added by an operator",
    IMPORTED: "imported from another list (the note says what it said)",
}

# Lifting these is the customer's decision, not ours (see the module's docstring).
_CUSTOMERS_OWN = {
    OPTED_OUT: "the customer texted STOP: only their START lifts it (the carrier refuses our messages to "
               "them until then)",
}


def words_for(reason: str) -> str:
    return WORDS.get(reason, reason)


class CannotLift(ValueError):
    """The address is suppressed for a reason an operator may not undo (as asked)."""


class NotSuppressed(LookupError):
    pass


@dataclass(frozen=True)
class Entry:
    """A suppression in force, or an event of an address's history (``action`` added or lifted)."""

    channel: str
    address: str
    reason: str
    source: str
    at: datetime
    action: str | None = None
    note: str | None = None

    @property
    def words(self) -> str:
        return words_for(self.reason)

    def as_dict(self, address: str | None = None) -> dict[str, Any]:
        """For JSON output, with the address as the caller shows it (masked or not), if at all."""
        out: dict[str, Any] = {"channel": self.channel, "address": address} if address is not None else {}
        out.update(reason=self.reason, reason_words=self.words, source=self.source, at=self.at)
        if self.action is not None:
            out.update(action=self.action, note=self.note)
        return out


def _entry(row: Suppression | SuppressionEvent) -> Entry:
    if isinstance(row, SuppressionEvent):
        return Entry(row.channel, row.address, row.reason, row.source, row.created_at, row.action, row.note)
    return Entry(row.channel, row.address, row.reason, row.source, row.created_at)


def listed(session: Session, *, channel: str | None = None, reason: str | None = None, limit: int = 50
           ) -> tuple[int, list[Entry]]:
    """How many addresses match, and the newest ``limit`` of them."""
    where = []
    if channel is not None:
        where.append(col(Suppression.channel) == channel)
    if reason is not None:
        where.append(col(Suppression.reason) == reason)
    total = session.scalar(select(func.count()).select_from(Suppression).where(*where)) or 0
    newest = (col(Suppression.created_at).desc(), col(Suppression.id).desc())
    rows = session.scalars(select(Suppression).where(*where).order_by(*newest).limit(limit))
    return total, [_entry(r) for r in rows]


def counts_by_reason(session: Session) -> dict[tuple[str, str], int]:
    """(channel, reason) -> addresses on the list."""
    channel, reason = col(Suppression.channel), col(Suppression.reason)
    rows = session.execute(select(channel, reason, func.count()).group_by(channel, reason))
    return {(channel, reason): n for channel, reason, n in rows}


def _row(session: Session, channel: str, address: str) -> Suppression | None:
    """The suppression of ``address`` as spelled, else as spelled in any case: the list keeps the
    customer record's spelling (``Ada@example.com``), a person may type it otherwise."""
    on_channel = select(Suppression).where(col(Suppression.channel) == channel)
    row = session.scalars(on_channel.where(col(Suppression.address) == address)).first()
    if row is None:
        row = session.scalars(on_channel.where(func.lower(col(Suppression.address)) == address.lower())
                              .order_by(col(Suppression.id))).first()
    return row


def current(session: Session, channel: str, address: str) -> Entry | None:
    row = _row(session, channel, address)
    return _entry(row) if row is not None else None


def history(session: Session, channel: str, address: str) -> list[Entry]:
    """Every time the address (in any case) was added to the list or lifted from it, oldest first."""
    return [_entry(e) for e in session.scalars(
        select(SuppressionEvent)
        .where(col(SuppressionEvent.channel) == channel,
               func.lower(col(SuppressionEvent.address)) == address.lower())
        .order_by(col(SuppressionEvent.id)))]


def holders(session: Session, channel: str, address: str) -> list[str]:
    """External ids of the customers this address reaches on ``channel``."""
    ids = customers_with_address(session, channel, address)
    if not ids:
        return []
    return list(session.scalars(select(col(Customer.external_id)).where(col(Customer.id).in_(ids))
                                .order_by(col(Customer.external_id))))


def add(session: Session, channel: str, address: str, note: str) -> tuple[Entry, bool]:
    """Suppresses an address by hand (reason ``manual``, the operator's note in the history). An address
    already on the list keeps its row and reason. Returns the row in force and whether it is new."""
    if not note.strip():
        raise ValueError("say why the address is suppressed (--note)")
    added = suppress_address(session, channel, address, MANUAL, SOURCE_OPERATOR, note=note.strip())
    row = current(session, channel, address)
    assert row is not None  # inserted above, or there already
    return row, added


def lift(session: Session, channel: str, address: str, note: str, *, customer_asked: bool = False) -> Entry:
    """Takes an address off the list, with the operator's note in the history. ``customer_asked``: the
    customer asked us to write again (needed to lift a spam report). Raises ``NotSuppressed`` or
    ``CannotLift``; nothing is changed then."""
    if not note.strip():
        raise ValueError("say why the address may be used again (--note)")
    row = _row(session, channel, address)
    if row is None:
        raise NotSuppressed(f"the address is not on the {channel} suppression list")
    if row.reason in _CUSTOMERS_OWN:
        raise CannotLift(f"suppressed because {_CUSTOMERS_OWN[row.reason]}")
    if row.reason == SPAM_REPORT and not customer_asked:
        raise CannotLift("suppressed because the recipient marked our email as spam: lift it only when the "
                         "customer asked to hear from us again (--customer-asked)")
    lifted = lift_suppression(session, channel, row.address, SOURCE_OPERATOR, note=note.strip(),
                              reasons=[row.reason])
    if lifted is None:  # lifted or changed by someone else since it was read
        raise NotSuppressed(f"the address is no longer on the {channel} suppression list")
    return _entry(lifted)


def provider_keeps_its_own(channel: str, reason: str) -> str | None:
    """A warning where the provider keeps its own list, which lifting ours does not touch."""
    if channel == "email" and reason in ("bounce", "invalid", SPAM_REPORT):
        return ("SendGrid keeps its own bounce and spam-report lists: remove the address there too, or "
                "SendGrid drops the next message to it.")
    if reason == "blocked":
        return "The recipient or their carrier may still block our messages."
    return None
