"""The two baselines the orchestrated campaign is measured against, on the same customers and fakes.

- **A, the obvious Prefect flow**: one Prefect task per message (``send_one.map``), each a direct
  SendGrid SDK call with no template, no policy and no ledger, under the same Prefect server.
- **B, the bare SDK loop**: one SendGrid SDK call per customer in a plain sequential loop, no caps,
  templates or database writes: the floor a naive integration pays for the network alone.

Both read the audience (id, name, email) of the first ``n`` customers from ``ORCH_DATABASE_URL``
and send to the SendGrid fake that ``ORCH_SENDGRID_HOST`` points at.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prefect import flow, task
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail
from sqlalchemy import select

from orchestrator.db import get_engine
from orchestrator.models import Customer
from orchestrator.settings import get_settings

SUBJECT = "Spring sale: 20% off every annual plan"
BODY = "Hello {name}, 20% off every annual plan with code SPRING20 until Sunday 30 March."
_customer = Customer.__table__  # type: ignore[attr-defined]


def audience(n: int, chunk: int = 1000) -> Iterator[tuple[int, str, str]]:
    """(id, name, email) of the first ``n`` customers with an email, streamed a chunk at a time."""
    engine = get_engine()
    last, left = 0, n
    while left > 0:
        with engine.connect() as conn:
            rows = conn.execute(
                select(_customer.c.id, _customer.c.name, _customer.c.email)
                .where(_customer.c.id > last, _customer.c.email.is_not(None))
                .order_by(_customer.c.id).limit(min(chunk, left))
            ).all()
        if not rows:
            return
        last, left = rows[-1].id, left - len(rows)
        yield from ((r.id, r.name, r.email) for r in rows)


def _client() -> SendGridAPIClient:
    settings = get_settings()
    assert settings.sendgrid_api_key is not None, "ORCH_SENDGRID_API_KEY must point at the fake"
    client = SendGridAPIClient(api_key=settings.sendgrid_api_key.get_secret_value(),
                               host=settings.sendgrid_host)
    client.client.timeout = settings.provider_timeout_seconds
    return client


def _send(client: SendGridAPIClient, customer_id: int, name: str, email: str) -> int:
    mail = Mail(get_settings().sendgrid_from_email, email, SUBJECT, BODY.format(name=name))
    mail.custom_arg = CustomArg("message_id", f"bare-{customer_id}")
    return client.send(mail).status_code


def bare_sdk_loop(n: int) -> dict[str, Any]:
    """Baseline B: the messages one after another through the SDK."""
    client = _client()
    started, sent = time.perf_counter(), 0
    for customer_id, name, email in audience(n):
        sent += _send(client, customer_id, name, email) == 202
    wall = time.perf_counter() - started
    return {"wall_s": wall, "messages": sent, "ms_per_message": 1000 * wall / max(1, sent)}


@task
def send_one(message: tuple[int, str, str]) -> int:
    return _send(_client(), *message)


@flow(name="obvious-campaign")
def obvious_campaign(messages: list[tuple[int, str, str]]) -> int:
    futures = send_one.map(messages)
    return sum(status == 202 for status in futures.result())


def obvious_prefect_flow(n: int) -> dict[str, Any]:
    """Baseline A: one Prefect task per message (the flow's own start-up included, as for ours)."""
    messages = list(audience(n))
    started = time.perf_counter()
    sent = obvious_campaign(messages)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "messages": sent, "ms_per_message": 1000 * wall / max(1, sent)}
