"""The benchmark's own pieces: synthetic customers in bulk, and the fakes' tally that checks caps."""

from __future__ import annotations

from collections import Counter

from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from sqlmodel import select

from bench.fakes_process import FakesProcess
from bench.synth import seed_customers, seed_marketing_history
from orchestrator.db import session_scope
from orchestrator.models import ConsentEvent, Customer, Message
from orchestrator.policy import Intent, reserve_chunk


def test_synthetic_customers_are_reachable_mostly_consenting_and_capped_by_their_history(db_url):
    seed_customers(db_url, 200)
    seed_customers(db_url, 100)  # a second batch continues after the first ids

    with session_scope() as s:
        customers = s.exec(select(Customer)).all()
        consent = Counter(e.state for e in s.exec(select(ConsentEvent)).all())
        added = Customer(external_id="after-synth", email="late@example.com")
        s.add(added)
        s.flush()  # PostgreSQL: the id sequence was moved past the ids synth chose
        assert added.id == 301
    assert len(customers) == 300 and all(c.email and c.phone for c in customers)
    assert len({c.timezone for c in customers}) > 3
    assert sum(c.attributes["region"] == "us-east" for c in customers) == 30
    assert consent == {"opted_in": 270, "opted_out": 9}  # 90% and 3%

    emails = seed_marketing_history(db_url, every=10)
    assert len(emails) == 30
    intents = [Intent(customer_id=c.id, topic="marketing", template="spring_sale", dedupe_key="campaign:new")
               for c in customers]
    result = reserve_chunk(intents)
    with session_scope() as s:
        capped = {m.customer_id for m in s.exec(select(Message).where(Message.dedupe_key == "campaign:new",
                                                                       Message.status == "suppressed"))}
    history = {c.id for c in customers if c.email in emails}
    assert history <= capped and result.count("suppressed") >= len(history)


def test_the_fakes_in_their_own_process_count_what_each_address_got():
    with FakesProcess(latency=0) as fakes:
        endpoints = fakes.endpoints
        assert endpoints is not None
        client = SendGridAPIClient(api_key=endpoints.sendgrid_api_key, host=endpoints.sendgrid_url)
        for to in ("a@example.com", "b@example.com", "a@example.com"):
            assert client.send(Mail("news@example.com", to, "Hi", "Hello")).status_code == 202

        sendgrid = fakes.tally(watched=["b@example.com", "nobody@example.com"])["sendgrid"]
        assert (sendgrid["accepted"], sendgrid["addresses"], sendgrid["max_per_address"]) == (3, 2, 2)
        assert sendgrid["watched_accepted"] == 1

        fakes.reset()
        assert fakes.tally()["sendgrid"]["accepted"] == 0
