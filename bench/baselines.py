"""The baselines the orchestrated campaign is measured against, on the same customers and fakes.

- **A, the obvious Prefect flow**: one Prefect task per message (``send_one.map``), each a direct
  SendGrid SDK call with no template, no policy and no ledger, under the same Prefect server.
- **B, the bare SDK loop**: one SendGrid SDK call per customer in a plain sequential loop, no caps,
  templates or database writes: the floor a naive integration pays for the network alone.
- **C, the best hand-written sender**: what a skilled engineer writes without our guarantees: the
  real template rendered once per locale with substitution tags, SendGrid personalizations of up
  to 1,000 recipients a request, the same concurrency (``ORCH_PROVIDER_CONCURRENCY`` threads, one
  keep-alive client each), the same signed unsubscribe links and the same garbage collector setting;
  no ledger, caps, consent or policy.

Both read the audience (id, name, email) of the first ``n`` customers from ``ORCH_DATABASE_URL``
and send to the SendGrid fake that ``ORCH_SENDGRID_HOST`` points at.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from prefect import flow, task
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Mail
from sqlalchemy import select

from channels.sendgrid.settings import SendGridSettings
from channels.settings import AdapterSettings, current
from flows.garbage_collection import collecting_less_often
from orchestrator.db import get_engine
from orchestrator.models import Customer, table_of

SUBJECT = "Spring sale: 20% off every annual plan"
BODY = "Hello {name}, 20% off every annual plan with code SPRING20 until Sunday 30 March."
_customer = table_of(Customer)


def audience(n: int, chunk: int = 1000) -> Iterator[tuple[int, str, str]]:
    """(id, name, email) of the first ``n`` customers with an email, streamed a chunk at a time."""
    return ((customer_id, name, email) for customer_id, name, email, _ in audience_with_locale(n, chunk))


def _client() -> SendGridAPIClient:
    settings = current(SendGridSettings)
    assert settings.api_key is not None, "ORCH_SENDGRID_API_KEY must point at the fake"
    client = SendGridAPIClient(api_key=settings.api_key.get_secret_value(), host=settings.host)
    client.client.timeout = current(AdapterSettings).timeout_seconds
    return client


def _send(client: SendGridAPIClient, customer_id: int, name: str, email: str) -> int:
    mail = Mail(current(SendGridSettings).from_email, email, SUBJECT, BODY.format(name=name))
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


def _tagged_context(locale: str) -> dict[str, Any]:
    """The spring sale's context with a substitution tag wherever a recipient's own value goes."""
    from bench.measure import MARKETING_FACTS
    from orchestrator.templating.context import brand

    customer = {"id": 0, "name": "-name-", "first_name": "-first_name-", "tier": "standard",
                "customer_since": None, "years_as_customer": None, "locale": locale, "timezone": "UTC",
                "x_handle": ""}
    links = {"unsubscribe_url": "-unsubscribe_url-", "preferences_url": "-preferences_url-"}
    return {"customer": customer, "brand": brand(), "links": links, "data": dict(MARKETING_FACTS),
            "topic": "marketing", "message_id": None}


def best_sender(n: int, per_request: int = 1000) -> dict[str, Any]:
    """Baseline C: personalizations of ``per_request``, the body rendered once per locale, threads."""
    from concurrent.futures import ThreadPoolExecutor

    from channels.keepalive_http import KeepAliveClient
    from orchestrator.links import preferences_url, unsubscribe_url
    from orchestrator.templating import render

    settings, shared = current(SendGridSettings), current(AdapterSettings)
    started = time.perf_counter()
    bodies: dict[str, Any] = {}

    def body_for(locale: str) -> Any:
        if locale not in bodies:
            bodies[locale] = render("spring_sale", tone=None, channel="email",
                                    context=_tagged_context(locale), locale=locale)
        return bodies[locale]

    local = threading.local()

    def client() -> SendGridAPIClient:
        sg = getattr(local, "sg", None)
        if sg is None:
            sg = local.sg = _client()
            sg.client = KeepAliveClient(host=sg.host, request_headers=sg._default_headers, version=3,
                                        timeout=shared.timeout_seconds)
        return sg

    def send(group: list[tuple[int, str, str, str]]) -> int:
        rendered = body_for(group[0][3])
        personalizations = [{
            "to": [{"email": email}], "subject": rendered.subject,
            "custom_args": {"message_id": f"best-{cid}"},
            "substitutions": {"-name-": name, "-first_name-": name.split(" ", 1)[0],
                              "-unsubscribe_url-": unsubscribe_url(cid, "marketing"),
                              "-preferences_url-": preferences_url(cid)},
        } for cid, name, email, _ in group]
        content = [{"type": "text/plain", "value": rendered.text}]
        if rendered.html:
            content.append({"type": "text/html", "value": rendered.html})
        response = client().send({"from": {"email": settings.from_email}, "content": content,
                                  "personalizations": personalizations})
        return len(group) if response.status_code == 202 else 0

    def groups() -> Iterator[list[tuple[int, str, str, str]]]:
        by_locale: dict[str, list[tuple[int, str, str, str]]] = {}
        for customer_id, name, email, locale in audience_with_locale(n):
            group = by_locale.setdefault(locale or "en", [])
            group.append((customer_id, name, email, locale or "en"))
            if len(group) == per_request:
                yield by_locale.pop(locale or "en")
        yield from (g for g in by_locale.values() if g)

    # The campaign's collector setting too (flows/garbage_collection.py): the ratio compares work.
    with collecting_less_often(), ThreadPoolExecutor(max_workers=shared.concurrency) as pool:
        sent = sum(pool.map(send, groups()))
    wall = time.perf_counter() - started
    return {"wall_s": wall, "messages": sent, "ms_per_message": 1000 * wall / max(1, sent),
            "customers_per_s": sent / wall}


def audience_with_locale(n: int, chunk: int = 1000) -> Iterator[tuple[int, str, str, str]]:
    """(id, name, email, locale) of the first ``n`` customers with an email, a chunk at a time."""
    engine = get_engine()
    last, left = 0, n
    while left > 0:
        with engine.connect() as conn:
            rows = conn.execute(
                select(_customer.c.id, _customer.c.name, _customer.c.email, _customer.c.locale)
                .where(_customer.c.id > last, _customer.c.email.is_not(None))
                .order_by(_customer.c.id).limit(min(chunk, left))
            ).all()
        if not rows:
            return
        last, left = rows[-1].id, left - len(rows)
        yield from ((r.id, r.name, r.email, r.locale) for r in rows)
