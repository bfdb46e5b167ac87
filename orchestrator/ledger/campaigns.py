"""Campaign records: the row a campaign's ledger messages hang on (``message.campaign_id``)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.models import Campaign, utcnow


def upsert_campaign(name: str, segment: str, topic: str, template: str, tone: str | None,
                    send_time: str) -> int | None:
    """The campaign row's id for ``name``, created or updated (a re-run reuses it); None when
    concurrent runs kept it from being written."""
    for _ in range(2):  # a concurrent first run may create it between our read and write
        try:
            with session_scope() as session:
                campaign = session.exec(select(Campaign).where(Campaign.name == name)).first()
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
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None:
            campaign.status, campaign.updated_at = status, utcnow()
            session.add(campaign)
