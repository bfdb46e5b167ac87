"""The web app under test: configured settings, a client, and ledger helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from orchestrator.db import session_scope
from orchestrator.models import Customer, Message, utcnow
from orchestrator.settings import get_settings
from orchestrator.web import create_app
from orchestrator.web.incidents import IncidentRequest
from tests.support.signing import SendGridSigner

PUBLIC_BASE_URL = "https://hooks.example.com"
TWILIO_TOKEN = "twilio-test-auth-token"
INCIDENT_TOKEN = "incident-test-token"


@dataclass
class LaunchRecorder:
    launched: list[IncidentRequest] = field(default_factory=list)

    def __call__(self, incident: IncidentRequest) -> str:
        self.launched.append(incident)
        return f"run-{len(self.launched)}"


@dataclass
class WebApp:
    client: TestClient
    signer: SendGridSigner
    launcher: LaunchRecorder


_SIGNER = SendGridSigner.generate()  # one key per test session: generating it costs time


def configure(monkeypatch: pytest.MonkeyPatch, public_base_url: str = PUBLIC_BASE_URL) -> None:
    monkeypatch.setenv("ORCH_PUBLIC_BASE_URL", public_base_url)
    monkeypatch.setenv("ORCH_SENDGRID_WEBHOOK_PUBLIC_KEY", _SIGNER.public_key)
    monkeypatch.setenv("ORCH_TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("ORCH_INCIDENT_TOKEN", INCIDENT_TOKEN)
    monkeypatch.setenv("ORCH_SECRET_KEY", "web-test-secret")
    get_settings.cache_clear()


@pytest.fixture(name="web")
def web_fixture(monkeypatch: pytest.MonkeyPatch) -> WebApp:
    """The app with every secret configured; request a database fixture alongside."""
    configure(monkeypatch)
    launcher = LaunchRecorder()
    with TestClient(create_app(launch_incident=launcher), base_url="http://testserver") as client:
        yield WebApp(client, _SIGNER, launcher)


def add_customer(**fields) -> Customer:
    values = {"external_id": "c-ada", "name": "Ada", "email": "ada@example.com", "phone": "+14155550100"}
    values.update(fields)
    with session_scope() as session:
        customer = Customer(**values)
        session.add(customer)
    return customer


def add_message(customer: Customer, channel: str = "email", status: str = "sent", topic: str = "marketing",
                provider_message_id: str | None = None, dedupe_key: str = "campaign-1") -> Message:
    with session_scope() as session:
        message = Message(dedupe_key=dedupe_key, customer_id=customer.id, topic=topic, channel=channel,
                          template="spring_sale", status=status, provider_message_id=provider_message_id,
                          sent_at=utcnow() if status == "sent" else None)
        session.add(message)
    return message


def reload(model, key):
    with session_scope() as session:
        return session.get(model, key)
