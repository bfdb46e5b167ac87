"""Incident records and the ledger rows of an incident's notices.

- ``record_update``: the incident and one ``IncidentUpdate`` per status; the update row is the
  claim that lets exactly one run post publicly about it.
- ``cancel_superseded``: once resolved, earlier notices that have not gone out are cancelled
  (the agents' calls about it are closed by ``phone_tasks.close_incident_calls``).
- ``notified_customer_chunks``: who heard about an earlier update, so the resolution reaches them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from orchestrator.db import ShortTransactionReader, is_sqlite, read_scope, session_scope
from orchestrator.ledger.cancel import cancel_waiting
from orchestrator.ledger.summaries import latest_with_statuses
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Incident, IncidentUpdate, MessageStatus, utcnow
from orchestrator.reasons import SUPERSEDED

RESOLVED_FIRST = SUPERSEDED.code("resolved")

# Ledger statuses of customers who did hear (or may have heard) about an earlier update.
HEARD = (MessageStatus.sending, MessageStatus.sent, MessageStatus.delivered, MessageStatus.reconcile)


class OutageError(ValueError):
    """The notice's parameters cannot work (or its incident cannot be recorded); nothing was sent."""


@dataclass(frozen=True)
class RecordedUpdate:
    incident_pk: int
    recorded: bool  # whether this call recorded the update (a re-trigger finds it there)
    first_status: str  # the incident's first update
    # What this update says, given now or else carried over from the incident's earlier updates:
    # a "resolved" sent with a summary only still names the problem and links the status page.
    title: str | None
    status_page_url: str | None


@dataclass(frozen=True)
class IncidentListing:
    incident: Incident
    updates: list[str]  # the statuses notified, in order
    statuses: dict[str, int]  # its notices by status


def list_incidents(limit: int = 20) -> list[IncidentListing]:
    """The most recently updated incidents, newest first, with their updates and notices by status."""
    with read_scope() as session:
        newest = col(Incident.updated_at)
        latest = latest_with_statuses(session, Incident, newest, MESSAGE.c.incident_id, limit)
        ids = [incident.id for incident, _ in latest]
        updates: dict[int, list[str]] = {}
        if ids:
            query = (select(col(IncidentUpdate.incident_id), col(IncidentUpdate.status))
                     .where(col(IncidentUpdate.incident_id).in_(ids)).order_by(col(IncidentUpdate.id)))
            for incident_pk, status in session.execute(query):
                updates.setdefault(incident_pk, []).append(status)
        session.expunge_all()
    return [IncidentListing(incident, updates.get(incident.id or 0, []), statuses)
            for incident, statuses in latest]


class UnknownIncident(LookupError):
    pass


def find_incident(session: Session, key: str) -> Incident:
    """The incident ``key`` (e.g. INC-42); ``UnknownIncident`` if there is none."""
    incident = session.scalars(select(Incident).where(col(Incident.incident_key) == key)).first()
    if incident is None:
        raise UnknownIncident(f"no incident {key!r} (`orchestrator outage list` shows them)")
    return incident


def record_update(incident_id: str, status: str, severity: str, summary: str, *, title: str | None,
                  segment: str | None, status_page_url: str | None,
                  affected: dict[str, Any] | None = None) -> RecordedUpdate:
    """Creates or updates the incident and its update for ``status``.

    The incident row is locked (PostgreSQL) or the write lock held (SQLite) while the update is
    looked up, so of two simultaneous triggers of one update exactly one records it.
    """
    for _ in range(2):  # two first triggers may both insert the incident: the loser reads it
        try:
            with session_scope() as session:
                query = select(Incident).where(col(Incident.incident_key) == incident_id)
                if not is_sqlite(session.get_bind()):
                    query = query.with_for_update()
                incident = session.scalars(query).first()
                earlier_title = earlier_url = None
                if incident is None:
                    incident = Incident(incident_key=incident_id)
                else:
                    earlier_title, earlier_url = incident.title or None, incident.status_page_url
                incident.severity = severity
                incident.title = (title or incident.title or summary)[:200]
                incident.summary = summary or incident.summary
                incident.status_page_url = status_page_url or incident.status_page_url
                incident.segment = segment or incident.segment
                incident.affected = affected or incident.affected
                incident.updated_at = utcnow()
                session.add(incident)
                session.flush()
                assert incident.id is not None  # flushed
                updates = list(session.scalars(
                    select(IncidentUpdate).where(col(IncidentUpdate.incident_id) == incident.id)
                    .order_by(col(IncidentUpdate.id))
                ))
                recorded = not any(u.status == status for u in updates)
                if recorded:  # a re-trigger of an older update does not move the incident back
                    incident.status = status
                    session.add(IncidentUpdate(incident_id=incident.id, status=status, summary=summary))
                first = updates[0].status if updates else status
                return RecordedUpdate(incident.id, recorded, first, title or earlier_title,
                                      status_page_url or earlier_url)
        except IntegrityError:
            continue
    raise OutageError(f"could not record incident {incident_id!r}")


def cancel_superseded(incident_pk: int, keep_key: str) -> int:
    """Earlier notices of the incident that have not gone out become ``cancelled``. Returns how many.

    Only ``planned`` and ``deferred`` rows change (a dispatcher that claimed one first sends it).
    """
    m = MESSAGE.c
    with session_scope() as session:
        return cancel_waiting(session, m.incident_id == incident_pk, m.dedupe_key != keep_key,
                              ~m.dedupe_key.startswith(keep_key, autoescape=True), reason=RESOLVED_FIRST)


def _heard(incident_pk: int, resolved_key: str) -> list[Any]:
    m = MESSAGE.c
    return [m.incident_id == incident_pk, m.status.in_([s.value for s in HEARD]),
            ~m.dedupe_key.startswith(resolved_key, autoescape=True)]


def count_notified(incident_pk: int, resolved_key: str) -> int:
    m = MESSAGE.c
    query = select(func.count(distinct(m.customer_id))).where(*_heard(incident_pk, resolved_key))
    return int(ShortTransactionReader().execute(query).scalar_one())


def notified_customer_chunks(incident_pk: int, resolved_key: str, chunk_size: int) -> Iterator[list[int]]:
    """Customers who heard about an earlier update of the incident, ascending, a chunk at a time."""
    m = MESSAGE.c
    reads = ShortTransactionReader()
    last = 0
    while True:
        ids = list(reads.execute(
            select(m.customer_id).distinct()
            .where(*_heard(incident_pk, resolved_key), m.customer_id > last)
            .order_by(m.customer_id).limit(chunk_size)
        ).scalars())
        if ids:
            yield ids
        if len(ids) < chunk_size:
            return
        last = ids[-1]


@dataclass(frozen=True)
class NotifiedAudience:
    """Customers who heard about an earlier update of the incident: who its resolution goes to."""

    incident_pk: int
    resolved_key: str

    def chunks(self, chunk_size: int) -> Iterator[list[int]]:
        return notified_customer_chunks(self.incident_pk, self.resolved_key, chunk_size)

    def between(self, first: int, last: int) -> list[int]:
        m = MESSAGE.c
        return list(ShortTransactionReader().execute(
            select(m.customer_id).distinct()
            .where(*_heard(self.incident_pk, self.resolved_key), m.customer_id.between(first, last))
            .order_by(m.customer_id)
        ).scalars())
