"""Mail merge: one rendering per group, recipients' values as substitutions, sent as SendGrid
personalizations. What each recipient gets must be exactly what rendering one by one gives."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import yaml

from channels.base import OutboundMessage, PermanentReason, ResultStatus
from channels.sendgrid.adapter import SendGridEmailAdapter
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import MessageStatus
from orchestrator.settings import REPO_ROOT, get_settings
from orchestrator.templating import build_context, reload_templates, render
from orchestrator.templating.merge import Item, expand, render_many
from tests.support.fakes import FakeSendGrid
from tests.support.ledger import add_customers, add_messages, messages

SAMPLE = yaml.safe_load((REPO_ROOT / "templates" / "sample_data.yaml").read_text())
NAMES = ["Ana Smith", "", "<script>alert(1)</script> & Co", "O'Brien \"Bo\"", "Zoë  Ünal", "-a-", "Ada"]


def customer(i: int, **fields):
    return {"id": i, "name": NAMES[i % len(NAMES)], "tier": "premium" if i % 5 == 0 else "standard",
            "customer_since": "2019-02-28" if i % 2 else None, "locale": "es" if i % 4 == 0 else "en",
            "timezone": "Asia/Kathmandu" if i % 3 else "UTC", "x_handle": "", **fields}


def items_for(message: str, channel: str, tone: str | None, n: int = 60) -> list[Item]:
    facts = SAMPLE["messages"][message]
    topic = "outage" if message.startswith("outage") else "marketing"
    return [Item(message, tone, channel, customer(i)["locale"], None,
                 build_context(customer(i), facts, topic=topic, message_id=1000 + i))
            for i in range(1, n + 1)]


@pytest.mark.parametrize(("message", "channel", "tone"), [
    ("spring_sale", "email", "professional"), ("spring_sale", "sms", "appreciative"),
    ("outage_notice", "email", "empathetic"), ("outage_notice", "sms", "urgent"),
    ("security_alert", "email", None), ("anniversary", "email", None),
])
def test_merged_rendering_equals_rendering_one_by_one(sqlite_url, message, channel, tone):
    items = items_for(message, channel, tone)

    outcomes = render_many(items)

    for item, outcome in zip(items, outcomes, strict=True):
        alone = render(item.message, tone=item.tone, channel=item.channel, context=dict(item.context),
                       locale=item.locale or "en")
        assert outcome.rendered == alone
        if outcome.merge is not None:  # the skeleton plus this recipient's values is the same message
            assert expand(outcome.merge.text, outcome.merge.substitutions) == alone.text
            if alone.html is not None:
                assert expand(outcome.merge.html or "", outcome.merge.substitutions) == alone.html
    merged = [o for o in outcomes if o.merge is not None]
    assert len(merged) >= len(items) // 2  # most recipients share a skeleton
    assert len({o.merge.key for o in merged}) <= 24  # few groups: tier x locale x zone x empty name


def test_html_gets_escaped_values_and_text_the_values_as_they_are(sqlite_url):
    facts = SAMPLE["messages"]["spring_sale"]
    items = [Item("spring_sale", "professional", "email", "en", None,
                  build_context(customer(7 * i + 2, locale="en", tier="standard", timezone="UTC"), facts,
                                topic="marketing"))
             for i in range(4)]
    hostile = render_many(items)[2]
    assert NAMES[(7 * 2 + 2) % len(NAMES)].startswith("<script>")

    assert hostile.merge is not None
    assert "Hi &lt;script&gt;alert(1)&lt;/script&gt;," in (hostile.rendered.html or "")
    assert "<script>" not in (hostile.rendered.html or "")
    assert hostile.rendered.text.startswith("Hi <script>alert(1)</script>,")
    assert all(tag not in hostile.rendered.text for tag in hostile.merge.substitutions)


def test_a_personal_value_no_template_reads_does_not_split_a_group(sqlite_url):
    """The shipped templates never read the X handle: recipients with and without one share a skeleton."""
    facts = SAMPLE["messages"]["spring_sale"]
    people = [customer(5 * i + 1, name="Ana Smith", customer_since="2019-02-28", timezone="UTC", locale="en",
                       x_handle="@ana" if i % 2 else "") for i in range(8)]
    items = [Item("spring_sale", "professional", "email", "en", None,
                  build_context(c, facts, topic="marketing", message_id=2000 + c["id"])) for c in people]

    outcomes = render_many(items)

    assert {o.merge.key for o in outcomes if o.merge is not None} == {outcomes[0].merge.key}
    assert all(o.merge is not None for o in outcomes)
    for item, outcome in zip(items, outcomes, strict=True):
        assert outcome.rendered == render("spring_sale", tone="professional", channel="email",
                                          context=dict(item.context), locale="en")


@pytest.mark.parametrize("use", [
    "{{ customer.first_name|upper }}",  # a filter changes the value: detected by the check
    "{% if customer.name == 'Ada' %}VIP{% endif %}",  # compared: refused by the slot
    "{{ customer.name|length }}",
    "{{ customer.name[:1] }}",
    "{{ links.unsubscribe_url|truncate(20) }}",
])
def test_a_template_that_does_more_than_print_a_personal_value_is_rendered_one_by_one(
        sqlite_url, tmp_path, monkeypatch, use):
    root = tmp_path / "templates"
    shutil.copytree(REPO_ROOT / "templates", root)
    html = root / "messages" / "spring_sale" / "professional" / "email.txt"
    html.write_text(html.read_text().replace("{% block content %}", "{% block content %}" + use + "\n"))
    monkeypatch.setenv("ORCH_TEMPLATES_DIR", str(root))
    get_settings.cache_clear()
    reload_templates()
    try:
        items = items_for("spring_sale", "email", "professional", n=14)
        outcomes = render_many(items)
        for item, outcome in zip(items, outcomes, strict=True):
            assert outcome.merge is None
            assert outcome.rendered == render("spring_sale", tone="professional", channel="email",
                                              context=dict(item.context), locale=item.locale or "en")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        reload_templates()


def _adapter(fake: FakeSendGrid, **options) -> SendGridEmailAdapter:
    return SendGridEmailAdapter(api_key=fake.api_key, host=fake.url, timeout=2, concurrency=2, **options)


def _outbound(n: int, *, addresses: list[str] | None = None, base: str = "https://hooks.example.com"
              ) -> list[OutboundMessage]:
    outcomes = render_many(items_for("spring_sale", "email", "professional", n=n))
    addresses = addresses or [f"c{i}@example.com" for i in range(n)]
    out = []
    for i, outcome in enumerate(outcomes):
        r = outcome.rendered
        out.append(OutboundMessage(
            message_id=500 + i, channel="email", to=addresses[i], body=r.text, subject=r.subject, html=r.html,
            marketing=True, categories=["marketing", "spring_sale"],
            unsubscribe_url=f"{base}/unsubscribe/{i}", merge=outcome.merge))
    return out


def test_sendgrid_sends_a_merge_as_personalizations_and_each_recipient_gets_their_message(
        sqlite_url, fake_sendgrid):
    batch = [m for m in _outbound(40) if m.merge is not None]
    adapter = _adapter(fake_sendgrid)
    try:
        results = adapter.send(batch)
    finally:
        adapter.close()

    assert [r.message_id for r in results] == [m.message_id for m in batch]
    assert all(r.status is ResultStatus.accepted for r in results)
    http = {id(r.http or r) for r in fake_sendgrid.requests}
    assert len(http) == len({m.merge.key for m in batch})  # one request per skeleton
    for message in batch:
        (received,) = fake_sendgrid.requests_for(message.message_id)
        assert received.address == message.to and received.status == 202
        assert fake_sendgrid.delivered(received) == {"subject": message.subject, "text": message.body,
                                                     "html": message.html}
        personalization = received.data["personalizations"][received.index]
        assert personalization["headers"] == {"List-Unsubscribe": f"<{message.unsubscribe_url}>",
                                              "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


def test_merged_emails_with_http_links_carry_no_one_click_header(sqlite_url, fake_sendgrid):
    batch = [m for m in _outbound(6, base="http://127.0.0.1:8000") if m.merge is not None]
    adapter = _adapter(fake_sendgrid)
    try:
        adapter.send(batch)
    finally:
        adapter.close()
    for message in batch:
        (received,) = fake_sendgrid.requests_for(message.message_id)
        personalization = received.data["personalizations"][received.index]
        assert personalization["headers"] == {"List-Unsubscribe": f"<{message.unsubscribe_url}>"}


def test_requests_hold_at_most_batch_size_and_never_one_address_twice(sqlite_url, fake_sendgrid):
    same = [f"c{i % 3}@example.com" for i in range(40)]  # every address three or more times
    batch = [m for m in _outbound(40, addresses=same) if m.merge is not None]
    adapter = _adapter(fake_sendgrid, batch_size=4)
    try:
        expected_requests = adapter.requests_for(batch)  # what a send rate in requests counts
        results = adapter.send(batch)
    finally:
        adapter.close()

    assert all(r.ok for r in results)
    per_request = Counter(id(r.http or r) for r in fake_sendgrid.requests)
    assert max(per_request.values()) <= 4 and len(per_request) == expected_requests
    for key in {id(r.http or r) for r in fake_sendgrid.requests}:
        addresses = [r.address for r in fake_sendgrid.requests if id(r.http or r) == key]
        assert len(addresses) == len(set(addresses))
    assert Counter(r.message_id for r in fake_sendgrid.requests) == Counter(str(m.message_id) for m in batch)


def test_an_address_refused_in_a_merged_request_fails_alone_and_the_others_go(sqlite_url, fake_sendgrid):
    batch = [m for m in _outbound(30) if m.merge is not None]
    sizes = Counter(m.merge.key for m in batch)
    refused = [m for m in batch if sizes[m.merge.key] >= 3][1]  # in the middle of a merged request
    refused.to = "nobody@nowhere"  # no dot in the domain: the fake refuses it
    adapter = _adapter(fake_sendgrid)
    try:
        results = {r.message_id: r for r in adapter.send(batch)}
    finally:
        adapter.close()

    assert results[refused.message_id].status is ResultStatus.permanent
    assert results[refused.message_id].error.reason is PermanentReason.invalid_address
    others = [m for m in batch if m is not refused]
    assert all(results[m.message_id].ok for m in others)
    accepted = Counter(r.message_id for r in fake_sendgrid.accepted())
    assert accepted == Counter(str(m.message_id) for m in others)  # each once, the refused one never


def test_a_rate_limited_merged_request_defers_every_recipient_until_the_reset(sqlite_url, fake_sendgrid):
    batch = [m for m in _outbound(10) if m.merge is not None]
    fake_sendgrid.reset_in = 60
    fake_sendgrid.fail_next(10, "rate_limit")
    adapter = _adapter(fake_sendgrid)
    try:
        results = adapter.send(batch)
    finally:
        adapter.close()

    assert all(r.status is ResultStatus.transient and r.error.reason == "rate_limited" for r in results)
    assert all(55 <= (r.error.retry_after or 0) <= 61 for r in results)
    assert not fake_sendgrid.accepted()


def test_dispatch_sends_a_campaign_chunk_in_a_few_requests_each_customer_once(sqlite_url, fake_sendgrid):
    ids = add_customers(300)
    mids = add_messages(ids, template="spring_sale", topic="marketing", tone="professional",
                        data=SAMPLE["messages"]["spring_sale"], dedupe="spring")
    adapter = _adapter(fake_sendgrid)
    try:
        report = dispatch_due(adapters={"email": adapter})
    finally:
        adapter.close()

    assert report.total("sent") == 300
    assert all(m.status == MessageStatus.sent for m in messages(mids).values())
    assert Counter(r.message_id for r in fake_sendgrid.accepted()) == Counter(str(m) for m in mids)
    assert len({id(r.http or r) for r in fake_sendgrid.requests}) <= 3  # 300 customers, one skeleton
    sample = fake_sendgrid.requests_for(mids[7])[0]
    delivered = fake_sendgrid.delivered(sample)
    tags = sample.data["personalizations"][sample.index]["substitutions"]
    assert tags and not any(tag in delivered[part] for tag in tags for part in ("text", "html"))
    assert delivered["text"].startswith("Hi Ada,")
    assert "/unsubscribe/" in delivered["html"] and "/preferences/" in delivered["text"]
