"""The X adapter through the real ``tweepy`` client against the local fake X API v2."""

from __future__ import annotations

import socket
import time

import pytest

from channels.base import ConfigurationError, OutboundMessage, PermanentReason, ResultStatus
from channels.x.adapter import XSocialAdapter
from tests.support.fakes import TRANSIENT_FAULTS, FakeX, Fault

CREDENTIALS = dict(consumer_key="ck", consumer_secret="cs", access_token="at", access_token_secret="ats")


def dm(message_id: int, to: str = "") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, channel="social", to=to or str(5000 + message_id), body="Hi!"
    )


@pytest.fixture
def adapter(fake_x: FakeX):
    adapter = XSocialAdapter(**CREDENTIALS, base_url=fake_x.url, timeout=0.3, concurrency=4)
    yield adapter
    adapter.close()


def test_a_direct_message_goes_to_the_customers_x_user(adapter, fake_x):
    (result,) = adapter.send([dm(1)])
    assert result.ok and result.provider == "x"
    (request,) = fake_x.requests_to("5001")
    assert request.path == "/2/dm_conversations/with/5001/messages"
    assert request.data == {"text": "Hi!"}
    assert request.headers["Authorization"].startswith("OAuth ")  # OAuth 1.0a user context
    assert result.provider_message_id == result.raw["data"]["dm_event_id"]


def test_a_broadcast_is_one_public_post(adapter, fake_x):
    result = adapter.broadcast("We are investigating an outage of the payments API.", dedupe_key="inc-7:1")
    assert result.error is None and result.provider_post_id
    assert fake_x.posts() == ["We are investigating an outage of the payments API."]
    assert [r.path for r in fake_x.requests] == ["/2/tweets"]


def test_posting_the_same_update_again_is_refused_not_duplicated(adapter, fake_x):
    adapter.broadcast("Resolved: payments are back.", dedupe_key="inc-7:2")
    again = adapter.broadcast("Resolved: payments are back.", dedupe_key="inc-7:2")
    assert again.error.reason is PermanentReason.rejected and "duplicate" in again.error.detail
    assert fake_x.posts() == ["Resolved: payments are back."]


def test_rate_limit_is_transient_with_retry_after_and_the_sdk_does_not_wait(adapter, fake_x):
    fake_x.fail_next(1, Fault.rate_limit)
    before = time.time()
    (result,) = adapter.send([dm(1)])
    assert result.status is ResultStatus.transient and result.error.reason == "rate_limited"
    assert fake_x.reset_in - 2 <= result.error.retry_after <= fake_x.reset_in + (time.time() - before)
    assert len(fake_x.requests) == 1  # tweepy did not sleep and retry on its own


def test_broadcast_rate_limit_is_transient(adapter, fake_x):
    fake_x.fail_next(1, Fault.rate_limit)
    result = adapter.broadcast("Update", dedupe_key="k")
    assert result.error.reason == "rate_limited" and result.error.retry_after > 0


def test_recipients_we_cannot_message_are_permanent(adapter, fake_x):
    fake_x.dm_closed.add("5002")
    fake_x.fail_next(1, Fault.invalid_address)
    first = adapter.send([dm(1)])[0]
    closed, not_an_id = adapter.send([dm(2), dm(3, to="@handle")])
    assert first.error.reason is PermanentReason.invalid_address
    assert closed.error.reason is PermanentReason.blocked
    assert not_an_id.error.reason is PermanentReason.invalid_address
    assert fake_x.requests_to("@handle") == []


@pytest.mark.parametrize(("fault", "reason"), TRANSIENT_FAULTS)
def test_provider_trouble_is_transient(adapter, fake_x, fault, reason):
    fake_x.hang_seconds = 1.0
    fake_x.fail_next(1, fault)
    (result,) = adapter.send([dm(1)])
    assert result.status is ResultStatus.transient and result.error.reason.startswith(reason)
    assert adapter.send([dm(2)])[0].ok


def test_connection_refused_is_transient():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = XSocialAdapter(**CREDENTIALS, base_url=f"http://127.0.0.1:{port}", timeout=0.5)
    (result,) = adapter.send([dm(1)])
    assert result.status is ResultStatus.transient and result.error.reason.startswith("connection_error")


def test_bearer_only_setups_are_refused_with_the_missing_settings_named():
    with pytest.raises(ConfigurationError, match="ORCH_X_ACCESS_TOKEN"):
        XSocialAdapter(consumer_key="ck", consumer_secret="cs")
