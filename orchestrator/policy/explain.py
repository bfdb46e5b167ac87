"""Why did (or didn't) a customer hear from us? Answered from the ledger alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Campaign, Customer, Incident, MessageStatus, table_of


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
    belongs_to: str  # "campaign spring-2026", "incident INC-42 (resolved)", "anniversary:2026"
    settle_with: str | None = None  # for a message in reconcile: the command that settles it

    def as_dict(self) -> dict:
        return asdict(self)


def find_customer_id(session: Session, external_id_or_id: str | int) -> int:
    """A customer by external id, else by numeric id; UnknownCustomer if neither exists."""
    key = str(external_id_or_id).strip()
    c = table_of(Customer).c
    found = session.connection().execute(select(c.id).where(c.external_id == key)).scalar()
    if found is None and key.isdigit():
        found = session.connection().execute(select(c.id).where(c.id == int(key))).scalar()
    if found is None:
        raise UnknownCustomer(f"no customer with external id or id {key!r}")
    return int(found)


def reconcile_hint(message_ids: Sequence[int]) -> str:
    """What settles messages flagged ``reconcile``: the one command, spelled out with their ids."""
    ids = " ".join(str(i) for i in message_ids[:20]) + (" ..." if len(message_ids) > 20 else "")
    return (f"check the provider, then `orchestrator reconcile settle {ids or 'ID...'} --sent` "
            "(it has them) or `--not-sent` (send again); `orchestrator reconcile list` shows them all")


def belongs_to(campaign: str | None, incident: str | None, data: dict[str, Any] | None, template: str,
               dedupe_key: str) -> str:
    """The campaign, incident update or template a ledger row was written for, in a few words."""
    if campaign:
        return f"campaign {campaign}"
    if incident:
        update = (data or {}).get("status")
        return f"incident {incident}" + (f" ({update})" if update else "")
    return f"{template} ({dedupe_key})"


def _with_origin(*columns: Any) -> Any:
    """A query over ledger rows with the names of their campaign and incident."""
    campaigns, incidents = (t.metadata.tables[t.__tablename__] for t in (Campaign, Incident))
    m = MESSAGE.c
    return (
        select(*columns, m.id, m.template, m.dedupe_key, m.data, campaigns.c.name.label("campaign"),
               incidents.c.incident_key.label("incident"))
        .select_from(MESSAGE.outerjoin(campaigns, campaigns.c.id == m.campaign_id)
                     .outerjoin(incidents, incidents.c.id == m.incident_id))
    )


def message_origins(session: Session, message_ids: Sequence[int]) -> dict[int, str]:
    """What each message belongs to (``belongs_to``), by message id."""
    if not message_ids:
        return {}
    m = MESSAGE.c
    rows = session.connection().execute(_with_origin().where(m.id.in_(list(message_ids))))
    return {r.id: belongs_to(r.campaign, r.incident, r.data, r.template, r.dedupe_key) for r in rows}


def explain_customer(
    session: Session, external_id_or_id: str | int, limit: int = 20, campaign_id: int | None = None,
    incident_id: int | None = None,
) -> list[ExplainedDecision]:
    """The customer's most recent ledger rows (only one campaign's or incident's, if given), newest
    first, with their reasons."""
    customer_id = find_customer_id(session, external_id_or_id)
    m = MESSAGE.c
    query = _with_origin(m.created_at, m.topic, m.channel, m.tone, m.status, m.send_at, m.reason_codes,
                         m.reason_text).where(m.customer_id == customer_id)
    if campaign_id is not None:
        query = query.where(m.campaign_id == campaign_id)
    if incident_id is not None:
        query = query.where(m.incident_id == incident_id)
    rows = session.connection().execute(query.order_by(m.id.desc()).limit(limit))
    return [
        ExplainedDecision(
            message_id=r.id, decided_at=r.created_at, dedupe_key=r.dedupe_key, topic=r.topic,
            template=r.template, channel=r.channel, tone=r.tone, status=r.status, send_at=r.send_at,
            reason_codes=list(r.reason_codes or []), reason_text=r.reason_text,
            belongs_to=belongs_to(r.campaign, r.incident, r.data, r.template, r.dedupe_key),
            settle_with=reconcile_hint([r.id]) if r.status == MessageStatus.reconcile else None,
        )
        for r in rows
    ]
