"""Campaign records: the row a campaign's ledger messages hang on (``message.campaign_id``).

An operator may cancel a campaign (``cancel_campaign``): what has not gone out is cancelled, a run
still going reserves nothing more (``cancelled_campaigns``, read by the reservation in its own
transaction), and the name cannot be run again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from orchestrator.db import ShortTransactionReader, is_sqlite, read_scope, session_scope
from orchestrator.ledger.cancel import cancel_waiting
from orchestrator.ledger.summaries import latest_with_statuses, statuses_per
from orchestrator.ledger.tables import MESSAGE
from orchestrator.models import Campaign, utcnow
from orchestrator.reasons import CANCELLED

CANCELLED_STATUS = "cancelled"
CANCELLED_BY_OPERATOR = CANCELLED.code("campaign")


class CampaignCancelled(ValueError):
    """The campaign was cancelled: its name cannot be run again."""


class UnknownCampaign(LookupError):
    pass


@dataclass(frozen=True)
class CampaignCancel:
    name: str
    cancelled: int  # messages that had not gone out, cancelled now
    already_cancelled: bool  # an earlier cancel did it
    statuses: dict[str, int]  # the campaign's messages by status, after the cancel


def refuse_if_cancelled(name: str, status: str | None = None) -> None:
    """Raises ``CampaignCancelled`` for a cancelled campaign's name (``status``: the campaign's, if
    already read; otherwise it is read)."""
    if status is None:
        query = select(col(Campaign.status)).where(col(Campaign.name) == name)
        status = ShortTransactionReader().execute(query).scalar()
    if status == CANCELLED_STATUS:
        raise CampaignCancelled(f"campaign {name!r} was cancelled: it cannot run again (give the campaign a "
                                "new name)")


def upsert_campaign(name: str, segment: str, topic: str, template: str, tone: str | None,
                    send_time: str) -> int | None:
    """The campaign row's id for ``name``, created or updated (a re-run reuses it); None when
    concurrent runs kept it from being written."""
    for _ in range(2):  # a concurrent first run may create it between our read and write
        try:
            with session_scope() as session:
                campaign = session.exec(select(Campaign).where(Campaign.name == name)).first()
                if campaign is not None:
                    refuse_if_cancelled(name, campaign.status)
                if campaign is None:
                    campaign = Campaign(name=name, segment=segment, topic=topic, template=template)
                campaign.segment, campaign.topic, campaign.template = segment, topic, template
                campaign.tone, campaign.send_time = tone, send_time
                campaign.status, campaign.updated_at = "running", utcnow()
                session.add(campaign)
                session.flush()
                assert campaign.id is not None  # flushed
                return campaign.id
        except IntegrityError:
            continue
    return None


def set_campaign_status(campaign_id: int, status: str) -> None:
    """Records where a run of the campaign stands; a cancelled campaign stays cancelled."""
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None and campaign.status != CANCELLED_STATUS:
            campaign.status, campaign.updated_at = status, utcnow()
            session.add(campaign)


def find_campaign(session: Session, name: str) -> Campaign:
    """The campaign named ``name``; ``UnknownCampaign`` if there is none."""
    campaign = session.exec(select(Campaign).where(col(Campaign.name) == name)).first()
    if campaign is None:
        raise UnknownCampaign(f"no campaign named {name!r} (`orchestrator campaign list` shows them)")
    return campaign


def cancel_campaign(name: str) -> CampaignCancel:
    """Cancels the campaign: its messages that have not gone out (``planned``, ``deferred``) are
    cancelled, and a run still going reserves nothing more. Messages already claimed for sending
    (``sending``) still go. Cancelling again changes nothing."""
    with session_scope() as session:
        query = select(Campaign).where(col(Campaign.name) == name)
        if not is_sqlite(session.get_bind()):
            query = query.with_for_update()  # waits for reservations reading it (cancelled_campaigns)
        campaign = session.exec(query).first()
        if campaign is None or campaign.id is None:
            raise UnknownCampaign(f"no campaign named {name!r}")
        already = campaign.status == CANCELLED_STATUS
        campaign.status, campaign.updated_at = CANCELLED_STATUS, utcnow()
        session.add(campaign)
        session.flush()
        ours = MESSAGE.c.campaign_id == campaign.id
        cancelled = cancel_waiting(session, ours, reason=CANCELLED_BY_OPERATOR)
        statuses = statuses_per(session, MESSAGE.c.campaign_id, [campaign.id])[campaign.id]
    return CampaignCancel(name, cancelled, already, statuses)


@dataclass(frozen=True)
class CampaignListing:
    campaign: Campaign
    statuses: dict[str, int]  # its messages by status


def list_campaigns(limit: int = 20) -> list[CampaignListing]:
    """The most recently created campaigns, newest first, with their messages by status."""
    with read_scope() as session:
        newest = col(Campaign.created_at)
        latest = latest_with_statuses(session, Campaign, newest, MESSAGE.c.campaign_id, limit)
        session.expunge_all()
    return [CampaignListing(campaign, statuses) for campaign, statuses in latest]


def is_cancelled(campaign_id: int) -> bool:
    """Whether an operator cancelled the campaign (a quick read; a run asks before each chunk)."""
    query = select(col(Campaign.status)).where(col(Campaign.id) == campaign_id)
    return bool(ShortTransactionReader().execute(query).scalar() == CANCELLED_STATUS)


def cancelled_campaigns(session: Session, campaign_ids: Iterable[int]) -> set[int]:
    """Which of the campaigns were cancelled, read in the caller's transaction. On PostgreSQL the
    rows are share-locked, so a cancel either waits for this transaction (and then cancels what it
    reserved) or is seen by it; SQLite has one writer at a time."""
    ids = sorted(set(campaign_ids))
    if not ids:
        return set()
    query = select(col(Campaign.id), col(Campaign.status)).where(col(Campaign.id).in_(ids))
    if not is_sqlite(session.get_bind()):
        query = query.with_for_update(read=True)
    return {cid for cid, status in session.exec(query) if cid is not None and status == CANCELLED_STATUS}
