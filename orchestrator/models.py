"""The data model. Every table lives here so migrations have one source.

Times are timezone-aware UTC datetimes (``utcnow()``); SQLModel's UTC type refuses naive
ones, so a local time can never be stored by mistake. Local times are derived from the
customer's IANA time zone when needed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Table, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC time: SQLite gives the UTC times it keeps back naive."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def table_of(model: type[SQLModel]) -> Table:
    """The Core ``Table`` behind a table class, for bulk statements that skip the ORM.

    SQLModel does not declare ``Model.__table__`` to type checkers; the metadata holds the same object.
    """
    name = model.__tablename__
    table = model.metadata.tables.get(name) if isinstance(name, str) else None
    if table is None:
        raise TypeError(f"{model.__name__} is not a table class")
    return table


class MessageStatus(StrEnum):
    planned = "planned"  # reserved, to be sent as soon as dispatch runs
    deferred = "deferred"  # reserved for a later send_at (quiet hours, cap slot, local time)
    suppressed = "suppressed"  # decided not to send; reasons say why
    sending = "sending"  # written before the provider call: the guard against double sends
    sent = "sent"  # provider accepted
    delivered = "delivered"
    failed = "failed"
    bounced = "bounced"
    cancelled = "cancelled"  # a deferred message made obsolete (e.g. incident resolved)
    reconcile = "reconcile"  # found in `sending` after a crash: needs a look, never re-sent blind


# Statuses that hold a slot against frequency caps.
CAP_HOLDING_STATUSES = (
    MessageStatus.planned,
    MessageStatus.deferred,
    MessageStatus.sending,
    MessageStatus.sent,
    MessageStatus.delivered,
    MessageStatus.reconcile,
)


class ConsentState(StrEnum):
    opted_in = "opted_in"
    opted_out = "opted_out"
    cleared = "cleared"  # as if never recorded: an opt-out undone where nothing was said before


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, unique=True, index=True)
    name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320, index=True)
    phone: str | None = Field(default=None, max_length=20, index=True)  # E.164
    x_user_id: str | None = Field(default=None, max_length=32)
    x_handle: str | None = Field(default=None, max_length=32)
    timezone: str = Field(default="UTC", max_length=64)
    locale: str = Field(default="en", max_length=16)
    tier: str = Field(default="standard", max_length=32, index=True)
    customer_since: date | None = None
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ContactPoint(SQLModel, table=True):
    """A customer's address on a channel whose address kind has no column on ``customer``
    (WhatsApp, a webhook URL...): see orchestrator/contact_points.py. One per customer and channel."""

    __tablename__ = "contact_point"
    __table_args__ = (
        UniqueConstraint("customer_id", "channel", name="uq_contact_point_channel"),
        Index("ix_contact_point_address", "channel", "address"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    channel: str = Field(max_length=32)
    address: str = Field(max_length=320)
    verified: bool = False
    source: str = Field(max_length=64)  # import, migration, webhook:<provider>, preference_centre...
    # When the customer last wrote to us from this address (conversational channels: it opens
    # WhatsApp's 24-hour window).
    last_inbound_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ConsentEvent(SQLModel, table=True):
    """Append-only consent history. The latest row per (customer, channel, topic) is in force.

    ``channel`` or ``topic`` may be ``*`` (all channels / all topics).
    """

    __tablename__ = "consent_event"
    __table_args__ = (Index("ix_consent_lookup", "customer_id", "channel", "topic", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    channel: str = Field(max_length=16)
    topic: str = Field(max_length=32)
    state: str = Field(max_length=16)  # ConsentState
    source: str = Field(max_length=64)  # import, webhook:sendgrid, sms_keyword, preference_centre...
    created_at: datetime = Field(default_factory=utcnow)


class ContactPreference(SQLModel, table=True):
    __tablename__ = "contact_preference"

    customer_id: int = Field(foreign_key="customer.id", primary_key=True)
    preferred_channels: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # "any", "daily", "weekly", "monthly": the most often this customer wants to hear from us.
    frequency: str = Field(default="any", max_length=16)
    quiet_start: str | None = Field(default=None, max_length=5)  # "HH:MM" local
    quiet_end: str | None = Field(default=None, max_length=5)
    do_not_contact: bool = False
    updated_at: datetime = Field(default_factory=utcnow)


class PreferenceEvent(SQLModel, table=True):
    """Audit trail of preference changes (what changed, who changed it, when)."""

    __tablename__ = "preference_event"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    source: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class Suppression(SQLModel, table=True):
    """An address we must not use again (hard bounce, spam report, invalid number, opt-out)."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppression_address"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    reason: str = Field(max_length=64)
    source: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class SuppressionEvent(SQLModel, table=True):
    """Append-only history of the suppression list: each address added and each one lifted, why and
    by whom (a lifted address's ``suppression`` row is gone; this says it was there)."""

    __tablename__ = "suppression_event"
    __table_args__ = (Index("ix_suppression_event_address", "channel", "address", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=320)
    action: str = Field(max_length=16)  # added, lifted
    reason: str = Field(max_length=64)  # why: bounce, spamreport, unsubscribed, manual...
    source: str = Field(max_length=64)  # webhook:sendgrid, sms_keyword, dispatch:sms, operator...
    note: str | None = Field(default=None, max_length=500)  # an operator's words: why
    created_at: datetime = Field(default_factory=utcnow)


class Campaign(SQLModel, table=True):
    __tablename__ = "campaign"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True)
    segment: str = Field(max_length=128)
    topic: str = Field(max_length=32)
    template: str = Field(max_length=128)
    tone: str | None = Field(default=None, max_length=32)
    send_time: str = Field(default="now", max_length=32)  # "now", "10:00" local, or ISO time
    status: str = Field(default="created", max_length=16)
    # Experiments (orchestrator.experiments): the variants as declared, the share held out,
    # and the conversion event the campaign is meant to cause, counted within the window.
    variants: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    holdout_percent: float = 0.0
    goal_event: str | None = Field(default=None, max_length=64)
    attribution_days: int = 7
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Incident(SQLModel, table=True):
    __tablename__ = "incident"

    id: int | None = Field(default=None, primary_key=True)
    incident_key: str = Field(max_length=128, unique=True)
    title: str = Field(default="", max_length=200)
    severity: str = Field(default="minor", max_length=16)  # minor, major, critical
    status: str = Field(default="investigating", max_length=16)
    summary: str = Field(default="")
    status_page_url: str | None = Field(default=None, max_length=500)
    segment: str | None = Field(default=None, max_length=128)
    # The attributes narrowing the segment to the customers affected (``--affected region=eu``).
    affected: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class IncidentUpdate(SQLModel, table=True):
    __tablename__ = "incident_update"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    status: str = Field(max_length=16)
    summary: str = Field(default="")
    created_at: datetime = Field(default_factory=utcnow)


class Message(SQLModel, table=True):
    """The ledger: one row per decision. Outbox, audit trail, cap counter and dedupe store."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("dedupe_key", "customer_id", "channel", name="uq_message_dedupe"),
        Index("ix_message_cap", "customer_id", "send_at"),
        Index("ix_message_due", "status", "send_at"),
        Index("ix_message_provider_id", "provider_message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200)
    customer_id: int = Field(foreign_key="customer.id")
    topic: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    tone: str | None = Field(default=None, max_length=32)
    template: str = Field(max_length=128)
    locale: str | None = Field(default=None, max_length=16)
    priority: int = 0
    status: str = Field(max_length=16)  # MessageStatus
    send_at: datetime = Field(default_factory=utcnow)
    deadline: datetime | None = None
    reason_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reason_text: str = Field(default="")
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    campaign_id: int | None = Field(default=None, foreign_key="campaign.id", index=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    variant: str | None = Field(default=None, max_length=32)  # experiment variant, or "holdout"
    provider: str | None = Field(default=None, max_length=32)
    provider_message_id: str | None = Field(default=None, max_length=128)
    attempts: int = 0
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    delivered_at: datetime | None = None


class PhoneTask(SQLModel, table=True):
    """A call for a human agent: reason, script, priority, due time from the topic's SLA."""

    __tablename__ = "phone_task"
    __table_args__ = (Index("ix_phone_task_queue", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", unique=True)
    topic: str = Field(max_length=32)
    reason: str = Field(default="")
    script: str = Field(default="")
    priority: int = 0
    due_at: datetime = Field(default_factory=utcnow)
    assignee: str | None = Field(default=None, max_length=128)
    status: str = Field(default="open", max_length=16)  # open, claimed, done, no_answer, escalated
    outcome: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryEvent(SQLModel, table=True):
    """What a provider told us about a message (webhooks). Unique per provider event id."""

    __tablename__ = "delivery_event"
    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id", name="uq_delivery_event"),
        Index("ix_delivery_event_message_kind", "message_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    provider: str = Field(max_length=32)
    provider_event_id: str = Field(max_length=200)
    event_type: str = Field(max_length=32)  # the provider's word
    kind: str | None = Field(default=None, max_length=16)  # channels.events.EventKind
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    occurred_at: datetime | None = None
    received_at: datetime = Field(default_factory=utcnow)


class CustomerFeedback(SQLModel, table=True):
    """A customer's own words (an SMS reply, a survey answer): never lost.

    A survey answer has a ``score`` on its ``scale`` (csat 1-5, nps 0-10) and the survey
    message it answers; a changed answer is a new row, and the latest row counts.
    """

    __tablename__ = "customer_feedback"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    channel: str = Field(max_length=16)
    body: str = Field(default="")
    source: str = Field(default="", max_length=64)
    message_id: int | None = Field(default=None, foreign_key="message.id", index=True)
    score: int | None = None
    scale: str | None = Field(default=None, max_length=8)
    created_at: datetime = Field(default_factory=utcnow)


class ConversionEvent(SQLModel, table=True):
    """Something a customer did that a campaign may have caused (a purchase, an upgrade).

    Unique per (customer, name, time): importing the same file twice records nothing new.
    """

    __tablename__ = "conversion_event"
    __table_args__ = (
        UniqueConstraint("customer_id", "name", "occurred_at", name="uq_conversion_event"),
        Index("ix_conversion_lookup", "name", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    name: str = Field(max_length=64)
    occurred_at: datetime
    value: float | None = None
    source: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class OutboxEntry(SQLModel, table=True):
    """What the local outbox adapter 'sent': the demo's and tests' provider."""

    __tablename__ = "outbox_entry"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int | None = Field(default=None, index=True)
    channel: str = Field(max_length=16)
    address: str = Field(default="", max_length=320)
    subject: str | None = None
    body: str = Field(default="")
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RateBudget(SQLModel, table=True):
    """One send rate's shared budget (``orchestrator.pacing.budget``): every process and machine
    takes its slots from this row, in a transaction that locks it. Times are epoch seconds."""

    __tablename__ = "rate_budget"

    name: str = Field(primary_key=True, max_length=64)  # the rate's name in policy.yaml, or a channel
    next_free: float = 0.0  # when the lane is free again (slots up to here are taken)
    factor: float = 1.0  # share of the declared rate in force: lowered by 429s, raised back slowly
    paused_until: float = 0.0  # a provider's retry_after
    urgent_until: float = 0.0  # urgent traffic holds the lane: bulk traffic waits until then
    adjusted_at: float = 0.0  # last change of ``factor``
    rate_limited: int = 0  # 429s the provider answered on this lane
