"""Concurrent webhooks about one address: every request is answered 200, and one suppression.

Providers deliver events in parallel: a bounce and a drop for one email address, "STOP" and
"stop." from one phone, arrive together. Both must be accepted (a 500 makes the provider retry,
and an error in the middle would lose the other half of a batch) and the address suppressed once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

from sqlmodel import select

from orchestrator.consent import suppress_address
from orchestrator.db import session_scope
from orchestrator.models import Suppression
from tests.support.signing import sendgrid_event, twilio_headers
from tests.support.web import PUBLIC_BASE_URL, TWILIO_TOKEN, WebApp, add_customer, add_message
from tests.support.web import web_fixture as web_fixture  # the `web` fixture

ROUNDS = 8


def test_two_writers_suppressing_one_address_at_once_both_succeed_and_one_row_remains(pg_url):
    """The race made deterministic: the second writer starts while the first has inserted and
    not yet committed (on SQLite writers are serialised, so only PostgreSQL can race)."""
    first_wrote, release_first = threading.Event(), threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        try:
            with session_scope() as session:
                outcomes["first"] = suppress_address(session, "email", "ada@example.com", "bounce", "a")
                first_wrote.set()
                release_first.wait(10)
        except Exception as exc:  # recorded, then asserted on
            outcomes["first"] = exc

    def second() -> None:
        try:
            with session_scope() as session:
                outcomes["second"] = suppress_address(session, "email", "ada@example.com", "dropped", "b")
        except Exception as exc:
            outcomes["second"] = exc

    one = threading.Thread(target=first)
    one.start()
    assert first_wrote.wait(10)
    two = threading.Thread(target=second)
    two.start()
    two.join(0.5)  # the second waits on the first's uncommitted row (before: it went ahead)
    release_first.set()
    one.join(10)
    two.join(10)

    assert outcomes == {"first": True, "second": False}
    with session_scope() as session:
        rows = session.exec(select(Suppression)).all()  # type: ignore[call-overload]
    assert [(r.address, r.reason) for r in rows] == [("ada@example.com", "bounce")]


def test_concurrent_webhooks_about_one_address_are_all_answered_and_suppress_it_once(web: WebApp, db_url,
                                                                                    figure):
    inbound = "/webhooks/twilio/inbound"
    requests = []
    addresses = []
    for n in range(ROUNDS):
        email, phone = f"ada{n}@example.com", f"+1415555{n:04d}"
        addresses += [email, phone]
        customer = add_customer(external_id=f"c-{n}", email=email, phone=phone)
        message = add_message(customer, provider_message_id=f"sg-{n}", dedupe_key=f"d-{n}")
        for event in (sendgrid_event("bounce", message.id, email, event_id=f"b-{n}", type="bounce",
                                     reason="550 5.1.1 unknown user"),
                      sendgrid_event("dropped", message.id, email, event_id=f"d-{n}",
                                     reason="Bounced Address")):
            body, headers = web.signer.request([event])
            requests.append(("/webhooks/sendgrid/events", body, headers))
        for i, text in enumerate(("STOP", "stop.")):
            params = {"From": phone, "Body": text, "MessageSid": f"SM{n:02d}{i:02d}" + "a" * 28,
                      "AccountSid": "AC" + "0" * 32}
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       **twilio_headers(TWILIO_TOKEN, PUBLIC_BASE_URL + inbound, params)}
            requests.append((inbound, urlencode(params).encode(), headers))

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda r: web.client.post(r[0], content=r[1], headers=r[2]).status_code,
                                requests))

    assert answers == [200] * len(requests)
    with session_scope() as session:
        rows = session.exec(select(Suppression)).all()  # type: ignore[call-overload]
    assert sorted(r.address for r in rows) == sorted(addresses)  # each once
    figure("concurrent webhooks", f"{len(requests)} webhooks in pairs about one address (a bounce and a "
           f"drop; STOP and stop.), 8 at a time: all answered 200, {len(addresses)} addresses suppressed "
           "once each")
