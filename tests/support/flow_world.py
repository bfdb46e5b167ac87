"""A small world for end-to-end flow tests: customers, the fake providers wired in, Prefect read-backs."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from sqlmodel import select

from orchestrator.db import session_scope
from orchestrator.models import ContactPreference, Customer, Message
from orchestrator.settings import get_settings
from tests.support.zones import DAYTIME, local_zone

MARKETING_FACTS = {"offer": "20% off every annual plan", "code": "SPRING20", "ends_on": "Sunday 30 March",
                   "shop_url": "https://example.com/pricing"}


def add_customer(external_id: str, *, email: str | None = None, phone: str | None = None,
                 x_user_id: str | None = None, tier: str = "standard", hour: int = DAYTIME,
                 prefer: list[str] | None = None, do_not_contact: bool = False,
                 customer_since: date | None = None, **attributes: Any) -> int:
    with session_scope() as s:
        customer = Customer(external_id=external_id, name=f"Ada {external_id}", email=email, phone=phone,
                            x_user_id=x_user_id, tier=tier, timezone=local_zone(hour),
                            customer_since=customer_since, attributes=attributes)
        s.add(customer)
        s.flush()
        if prefer or do_not_contact:
            s.add(ContactPreference(customer_id=customer.id, preferred_channels=prefer or [],
                                    do_not_contact=do_not_contact))
        return customer.id  # type: ignore[return-value]


def use_fake_providers(monkeypatch, *, sendgrid=None, twilio=None, x=None) -> None:
    """Points the registry's adapters at the fakes (real SDKs, local HTTP)."""
    env = {"ORCH_PROVIDER_TIMEOUT_SECONDS": "2", "ORCH_PUBLIC_BASE_URL": "https://hooks.example.com"}
    if sendgrid is not None:
        env |= {"ORCH_SENDGRID_API_KEY": sendgrid.api_key, "ORCH_SENDGRID_HOST": sendgrid.url}
    if twilio is not None:
        env |= {"ORCH_TWILIO_ACCOUNT_SID": twilio.account_sid, "ORCH_TWILIO_AUTH_TOKEN": twilio.auth_token,
                "ORCH_TWILIO_FROM_NUMBER": "+15557654321", "ORCH_TWILIO_BASE_URL": twilio.url}
    if x is not None:
        env |= {"ORCH_X_CONSUMER_KEY": "ck", "ORCH_X_CONSUMER_SECRET": "cs", "ORCH_X_ACCESS_TOKEN": "at",
                "ORCH_X_ACCESS_TOKEN_SECRET": "ats", "ORCH_X_API_BASE_URL": x.url}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def ledger(prefix: str = "") -> dict[int, Message]:
    """Ledger rows whose dedupe key starts with ``prefix``, by customer id for single rows per customer."""
    with session_scope() as s:
        rows = s.exec(select(Message).where(Message.dedupe_key.startswith(prefix)).order_by(Message.id)).all()
    return {m.id: m for m in rows}  # type: ignore[misc]


def by_customer(rows: dict[int, Message], channel: str | None = None) -> dict[int, Message]:
    return {m.customer_id: m for m in rows.values() if channel is None or m.channel == channel}


def artifacts(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def task_runs(flow_run_id: UUID) -> list[Any]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def flow_run(flow_run_id: UUID) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)
