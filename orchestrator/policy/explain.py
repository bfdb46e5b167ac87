"""Why did (or didn't) a customer hear from us? Answered from the ledger alone."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from orchestrator.models import Customer, Message


class UnknownCustomer(LookupError):
    pass


@dataclass
class ExplainedDecision:
    message_id: int
    decided_at: datetime
    dedupe_key: str
    topic: str
    template: str
    channel: str
    tone: str | None
    status: str
    send_at: datetime
    reason_codes: list[str]
    reason_text: str

    def as_dict(self) -> dict:
        return asdict(self)


def find_customer_id(session: Session, external_id_or_id: str | int) -> int:
    """A customer by external id, else by numeric id; UnknownCustomer if neither exists."""
    key = str(external_id_or_id).strip()
    c = Customer.__table__.c  # type: ignore[attr-defined]
    found = session.connection().execute(select(c.id).where(c.external_id == key)).scalar()
    if found is None and key.isdigit():
        found = session.connection().execute(select(c.id).where(c.id == int(key))).scalar()
    if found is None:
        raise UnknownCustomer(f"no customer with external id or id {key!r}")
    return int(found)


def explain_customer(
    session: Session, external_id_or_id: str | int, limit: int = 20
) -> list[ExplainedDecision]:
    """The customer's most recent ledger rows, newest first, with their reasons."""
    customer_id = find_customer_id(session, external_id_or_id)
    m = Message.__table__.c  # type: ignore[attr-defined]
    rows = session.connection().execute(
        select(
            m.id, m.created_at, m.dedupe_key, m.topic, m.template, m.channel, m.tone, m.status, m.send_at,
            m.reason_codes, m.reason_text,
        )
        .where(m.customer_id == customer_id)
        .order_by(m.id.desc())
        .limit(limit)
    )
    return [
        ExplainedDecision(
            message_id=r.id, decided_at=r.created_at, dedupe_key=r.dedupe_key, topic=r.topic,
            template=r.template, channel=r.channel, tone=r.tone, status=r.status, send_at=r.send_at,
            reason_codes=list(r.reason_codes or []), reason_text=r.reason_text,
        )
        for r in rows
    ]
