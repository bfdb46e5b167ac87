"""The policy's sunset: marketing stops on a channel where it is never read, and resumes at the first
sign of life. Decided from the ledger and the providers' events, in the chunk's bulk queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from orchestrator.db import session_scope
from orchestrator.models import CustomerFeedback, DeliveryEvent, MessageStatus
from orchestrator.policy import Intent, PolicyError, reserve_chunk
from orchestrator.policy.config import parse_policy
from orchestrator.policy.explain import explain_customer
from orchestrator.reasons import describe
from orchestrator.settings import REPO_ROOT
from tests.support.ledger import add_customers, add_messages

NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)
BASE = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text(encoding="utf-8"))


def policy_with(sunset: object) -> object:
    return parse_policy({**BASE, "sunset": sunset})


SUNSET = policy_with({"email": {"after": 3, "window": "26w"}})


def sent_emails(customer_ids: list[int], n: int, days_ago: int = 10, topic: str = "marketing") -> list[int]:
    ids: list[int] = []
    for k in range(n):
        ids += add_messages(customer_ids, template="promo", topic=topic, status=MessageStatus.delivered,
                            send_at=NOON - timedelta(days=days_ago + k), dedupe=f"old-{topic}-{days_ago}-{k}")
    return ids


def event(message_id: int, kind: str) -> None:
    with session_scope() as s:
        s.add(DeliveryEvent(message_id=message_id, provider="sendgrid", event_type=kind, kind=kind,
                            provider_event_id=f"{kind}-{message_id}"))


def offer(customer_id: int, topic: str = "marketing") -> Intent:
    return Intent(customer_id=customer_id, topic=topic, template="spring_sale" if topic == "marketing"
                  else "receipt", dedupe_key=f"new-{topic}")


def decided(customer_id: int, topic: str = "marketing"):
    [row] = [r for r in reserve_chunk([offer(customer_id, topic)], now=NOON, policy=SUNSET).rows]
    return row


def test_unread_email_stops_marketing_there_and_any_sign_of_life_brings_it_back(db_url):
    silent, opened, proxy, replied, few, long_ago = add_customers(6)
    emails = {cid: sent_emails([cid], 3) for cid in (silent, opened, proxy, replied)}
    sent_emails([few], 2)
    sent_emails([long_ago], 3, days_ago=200)  # outside the 26 weeks
    event(emails[opened][1], "open")
    event(emails[proxy][0], "machine_open")  # a privacy proxy opening everything: no sign of a person
    with session_scope() as s:
        s.add(CustomerFeedback(customer_id=replied, channel="email", body="not now", source="email_reply",
                               created_at=NOON - timedelta(days=3)))  # a reply names no message
        s.add(CustomerFeedback(customer_id=silent, channel="sms", body="stop calling", source="sms_reply",
                               created_at=NOON - timedelta(days=3)))  # words on another channel

    rows = reserve_chunk([offer(c) for c in (silent, opened, proxy, replied, few, long_ago)], now=NOON,
                         policy=SUNSET).rows
    by_customer = {r.customer_id: r for r in rows}

    assert {c for c, r in by_customer.items() if r.channel == "email"} == {opened, replied, few, long_ago}
    for cid in (silent, proxy):
        assert by_customer[cid].channel != "email"  # the next channel of the topic, if any
        with session_scope() as s:  # what `orchestrator explain` shows
            [entry] = [e for e in explain_customer(s, cid) if e.dedupe_key == "new-marketing"]
        assert "unengaged:email" in entry.reason_codes
        assert "3 email messages in the last 26 weeks, none opened, clicked or answered" in entry.reason_text
    assert describe("unengaged:email").startswith("email messages lately never opened")


def test_sunset_is_only_for_its_topics_and_off_unless_declared(db_url):
    (silent,) = add_customers(1)
    sent_emails([silent], 5)
    assert decided(silent, "transactional").channel == "email"  # a receipt still goes by email
    plain = reserve_chunk([Intent(customer_id=silent, topic="marketing", template="spring_sale",
                                  dedupe_key="no-sunset")], now=NOON, policy=parse_policy(BASE)).rows
    assert plain[0].channel == "email"


@pytest.mark.parametrize(("sunset", "problem"), [
    ({"fax": {"after": 3, "window": "26w"}}, "unknown channel 'fax'"),
    ({"email": {"after": 3, "window": "26w", "topics": ["nope"]}}, "sunset.email.topics: unknown topic"),
    ({"email": {"after": 3, "window": "26w", "topics": ["security"]}}, "'security' is required"),
    ({"email": {"after": 0, "window": "26w"}}, "sunset.email.after"),
    ({"email": {"after": 3, "window": "forever"}}, "sunset.email.window"),
])
def test_a_bad_sunset_names_its_key(sunset, problem):
    with pytest.raises(PolicyError) as raised:
        policy_with(sunset)
    assert problem in str(raised.value)
