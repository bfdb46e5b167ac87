"""Everything held about one customer, for their request to see it (the right of access) or to take
it elsewhere: one JSON document with a section per table of ``audience.personal_data``, every
column of every row, read in one transaction.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Table, select, tuple_

from orchestrator.audience.personal_data import WHERE_IT_LIVES, find_customer
from orchestrator.contact_points import addresses_of
from orchestrator.db import read_scope
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Customer, Suppression, SuppressionEvent, table_of, utcnow


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _rows(session: Any, table: Table, *where: Any) -> list[dict[str, Any]]:
    query = select(table).where(*where).order_by(*table.primary_key.columns)
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in session.execute(query)]


def export_customer(external_id: str) -> dict[str, Any]:
    """The customer's export: ``exported_at``, then one section per table holding their data, and the
    suppressed addresses among theirs with their history."""
    tables = Customer.metadata.tables
    with read_scope() as session:
        customer = find_customer(session, external_id)
        assert customer.id is not None  # a stored row
        theirs = select(MESSAGE.c.id).where(MESSAGE.c.customer_id == customer.id)
        out: dict[str, Any] = {"external_id": external_id, "exported_at": utcnow().isoformat()}
        for name, holding in WHERE_IT_LIVES.items():
            table = tables[name]
            if name == "customer":
                [out[holding.export]] = _rows(session, table, table.c.id == customer.id)
            elif "customer_id" in table.c:
                out[holding.export] = _rows(session, table, table.c.customer_id == customer.id)
            else:
                out[holding.export] = _rows(session, table, table.c.message_id.in_(theirs))
        reach = addresses_of(session, [customer])[customer.id]
        addresses = [(channel, address) for channel, address in reach.items() if address]
        for key, model in (("suppressed_addresses", Suppression), ("suppression_history", SuppressionEvent)):
            table = table_of(model)
            pairs = tuple_(table.c.channel, table.c.address)
            out[key] = _rows(session, table, pairs.in_(addresses)) if addresses else []
    return out
