"""The SendGrid adapter through the real ``sendgrid`` SDK against the local fake Mail Send API."""

from __future__ import annotations

import socket
import time

import pytest

from channels.base import ConfigurationError, OutboundMessage, PermanentReason, ResultStatus, Transient
from channels.sendgrid.adapter import SendGridEmailAdapter
from tests.support.fakes import TRANSIENT_FAULTS, FakeSendGrid, Fault


def email(message_id: int, to: str = "", **kwargs) -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id,
        channel="email",
        to=to or f"customer{message_id}@example.com",
        body=kwargs.pop("body", "Hello in plain text"),
        subject=kwargs.pop("subject", "Your account"),
        **kwargs,
    )


@pytest.fixture
def adapter(fake_sendgrid: FakeSendGrid):
    adapter = SendGridEmailAdapter(
        api_key=fake_sendgrid.api_key,
        host=fake_sendgrid.url,
        from_email="news@brand.example",
        from_name="Brand",
        reply_to="support@brand.example",
        timeout=0.3,
        concurrency=4,
    )
    yield adapter
    adapter.close()


def test_a_marketing_email_carries_our_id_categories_and_one_click_unsubscribe(adapter, fake_sendgrid):
    message = email(
        7,
        html="<p>Hello</p>",
        marketing=True,
        unsubscribe_url="https://brand.example/u/abc",
        categories=["marketing", "spring_sale"],
    )
    (result,) = adapter.send([message])

    assert result.status is ResultStatus.accepted and result.error is None
    assert result.provider == "sendgrid" and result.raw["status_code"] == 202
    assert result.provider_message_id
    (request,) = fake_sendgrid.requests_for(7)
    body = request.data
    assert request.headers["Authorization"] == f"Bearer {fake_sendgrid.api_key}"
    assert body["from"] == {"email": "news@brand.example", "name": "Brand"}
    assert body["reply_to"] == {"email": "support@brand.example"}
    assert body["subject"] == "Your account"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["custom_args"] == {"message_id": "7"}
    assert sorted(body["categories"]) == ["marketing", "spring_sale"]
    assert body["headers"] == {
        "List-Unsubscribe": "<https://brand.example/u/abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert body["personalizations"][0]["to"] == [{"email": "customer7@example.com"}]


def test_one_click_unsubscribe_only_with_an_https_link(adapter, fake_sendgrid):
    """RFC 8058 requires an HTTPS URI for List-Unsubscribe-Post; plain List-Unsubscribe stays."""
    adapter.send([email(9, marketing=True, unsubscribe_url="http://127.0.0.1:8000/unsubscribe/abc")])
    (request,) = fake_sendgrid.requests_for(9)
    assert request.data["headers"] == {"List-Unsubscribe": "<http://127.0.0.1:8000/unsubscribe/abc>"}


def test_a_transactional_email_has_no_unsubscribe_headers(adapter, fake_sendgrid):
    adapter.send([email(8, unsubscribe_url="https://brand.example/u/abc")])
    (request,) = fake_sendgrid.requests_for(8)
    assert "headers" not in request.data
    assert [c["type"] for c in request.data["content"]] == ["text/plain"]


def test_sandbox_mode_is_accepted_without_delivery(fake_sendgrid):
    adapter = SendGridEmailAdapter(api_key=fake_sendgrid.api_key, host=fake_sendgrid.url, sandbox=True)
    (result,) = adapter.send([email(1)])
    assert result.ok and result.raw["status_code"] == 200
    assert fake_sendgrid.requests_for(1)[0].data["mail_settings"]["sandbox_mode"] == {"enable": True}


def test_a_batch_is_sent_once_per_message_in_order(adapter, fake_sendgrid):
    batch = [email(i) for i in range(1, 41)]
    results = adapter.send(batch)
    assert [r.message_id for r in results] == list(range(1, 41))
    assert all(r.ok for r in results)
    assert all(len(fake_sendgrid.requests_for(i)) == 1 for i in range(1, 41))
    assert len({r.provider_message_id for r in results}) == 40


def test_connections_are_kept_alive(fake_sendgrid):
    adapter = SendGridEmailAdapter(api_key=fake_sendgrid.api_key, host=fake_sendgrid.url, concurrency=1)
    for i in range(5):
        assert adapter.send([email(i)])[0].ok
    assert len({r.client for r in fake_sendgrid.requests}) == 1
    adapter.close()


def test_rate_limit_becomes_transient_with_retry_after_from_the_reset_header(adapter, fake_sendgrid):
    fake_sendgrid.reset_in = 30
    fake_sendgrid.fail_next(1, Fault.rate_limit)
    before = time.time()
    (result,) = adapter.send([email(1)])
    assert result.status is ResultStatus.transient
    assert isinstance(result.error, Transient) and result.error.reason == "rate_limited"
    # X-RateLimit-Reset is whole epoch seconds: the wait is the rest of the window.
    assert 28 <= result.error.retry_after <= 30 + (time.time() - before)
    assert result.raw["status_code"] == 429


@pytest.mark.parametrize(("fault", "reason"), TRANSIENT_FAULTS)
def test_provider_trouble_is_transient(adapter, fake_sendgrid, fault, reason):
    fake_sendgrid.hang_seconds = 1.0
    fake_sendgrid.fail_next(1, fault)
    (result,) = adapter.send([email(1)])
    assert result.status is ResultStatus.transient
    assert result.error.reason.startswith(reason)
    assert adapter.send([email(2)])[0].ok  # the adapter recovers once the provider does


def test_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the send: nothing listens there
    adapter = SendGridEmailAdapter(api_key="SG.key", host=f"http://127.0.0.1:{port}", timeout=0.5)
    (result,) = adapter.send([email(1)])
    assert result.status is ResultStatus.transient
    assert result.error.reason.startswith("connection_error")


def test_invalid_address_is_permanent(adapter, fake_sendgrid):
    results = adapter.send([email(1, to="someone@nodot"), email(2, to="not-an-address")])
    assert [r.error.reason for r in results] == [PermanentReason.invalid_address] * 2
    assert "personalizations.0.to.0.email" in results[0].error.detail
    assert fake_sendgrid.requests_for(2) == []  # refused before any request


def test_bad_credentials_are_permanent_unauthorized(fake_sendgrid):
    adapter = SendGridEmailAdapter(api_key="SG.wrong", host=fake_sendgrid.url)
    (result,) = adapter.send([email(1)])
    assert result.status is ResultStatus.permanent
    assert result.error.reason is PermanentReason.unauthorized


def test_a_request_the_provider_refuses_is_permanent_rejected(adapter):
    (result,) = adapter.send([email(1, subject="")])
    assert result.error.reason is PermanentReason.rejected
    assert "subject" in result.error.detail


def test_without_an_api_key_the_adapter_refuses_to_start():
    with pytest.raises(ConfigurationError, match="ORCH_SENDGRID_API_KEY"):
        SendGridEmailAdapter()
