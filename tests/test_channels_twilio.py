"""The Twilio SMS adapter through the real ``twilio`` SDK against the local fake Messages API."""

from __future__ import annotations

import socket

import pytest

from channels.base import ConfigurationError, OutboundMessage, PermanentReason, ResultStatus
from channels.twilio.adapter import TwilioSmsAdapter
from tests.support.fakes import TRANSIENT_FAULTS, FakeTwilio, Fault
from tests.support.fakes.twilio import INVALID_NUMBER, NOT_MOBILE


def sms(message_id: int, to: str = "") -> OutboundMessage:
    return OutboundMessage(
        message_id=message_id, channel="sms", to=to or f"+1415555{message_id:04d}", body="Your code is ready"
    )


def make_adapter(fake: FakeTwilio, **overrides) -> TwilioSmsAdapter:
    kwargs = dict(
        account_sid=fake.account_sid,
        auth_token=fake.auth_token,
        from_number="+15557654321",
        base_url=fake.url,
        public_base_url="https://hooks.brand.example",
        timeout=0.3,
        concurrency=4,
    )
    kwargs.update(overrides)
    return TwilioSmsAdapter(**kwargs)


@pytest.fixture
def adapter(fake_twilio: FakeTwilio):
    adapter = make_adapter(fake_twilio)
    yield adapter
    adapter.close()


def test_an_sms_carries_our_id_on_the_status_callback(adapter, fake_twilio):
    (result,) = adapter.send([sms(12)])
    assert result.ok and result.provider == "twilio"
    assert result.provider_message_id.startswith("SM")
    (request,) = fake_twilio.requests_for(12)
    assert request.path == f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"
    assert request.data == {
        "To": "+14155550012",
        "From": "+15557654321",
        "Body": "Your code is ready",
        "StatusCallback": "https://hooks.brand.example/webhooks/twilio/status?message_id=12",
    }


def test_a_messaging_service_replaces_the_from_number(fake_twilio):
    adapter = make_adapter(fake_twilio, from_number=None, messaging_service_sid="MG" + "1" * 32)
    assert adapter.send([sms(1)])[0].ok
    form = fake_twilio.requests_for(1)[0].data
    assert form["MessagingServiceSid"] == "MG" + "1" * 32 and "From" not in form


def test_edge_and_region_settings_do_not_mangle_a_custom_base_url(monkeypatch, fake_twilio):
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    assert make_adapter(fake_twilio).send([sms(1)])[0].ok
    assert len(fake_twilio.requests_for(1)) == 1


def test_a_batch_is_sent_once_per_message_in_order(adapter, fake_twilio):
    results = adapter.send([sms(i) for i in range(1, 31)])
    assert [r.message_id for r in results] == list(range(1, 31))
    assert all(r.ok for r in results)
    assert all(len(fake_twilio.requests_for(i)) == 1 for i in range(1, 31))


@pytest.mark.parametrize("problem_details", [False, True], ids=["classic-errors", "rfc9457-errors"])
def test_error_codes_map_to_permanent_reasons(fake_twilio, problem_details):
    fake_twilio.problem_details = problem_details
    fake_twilio.opted_out.add("+14155550003")
    adapter = make_adapter(fake_twilio)
    results = adapter.send([sms(1, INVALID_NUMBER), sms(2, NOT_MOBILE), sms(3), sms(4, "0800 NOT A NUMBER")])
    assert [r.status for r in results] == [ResultStatus.permanent] * 4
    assert [r.error.reason for r in results] == [
        PermanentReason.invalid_address,  # 21211
        PermanentReason.blocked,  # 21614 not a mobile number
        PermanentReason.unsubscribed,  # 21610: the dispatcher records the opt-out
        PermanentReason.invalid_address,
    ]
    assert "21610" in results[2].error.detail
    assert INVALID_NUMBER not in results[0].error.detail  # the number is masked in the reason


def test_rate_limit_is_transient_with_retry_after(adapter, fake_twilio):
    fake_twilio.fail_next(1, Fault.rate_limit)
    (result,) = adapter.send([sms(1)])
    assert result.status is ResultStatus.transient
    assert result.error.reason == "rate_limited" and result.error.retry_after == 2.0
    assert result.raw["code"] == 20429


@pytest.mark.parametrize(("fault", "reason"), TRANSIENT_FAULTS)
def test_provider_trouble_is_transient(adapter, fake_twilio, fault, reason):
    fake_twilio.hang_seconds = 1.0
    fake_twilio.fail_next(1, fault)
    (result,) = adapter.send([sms(1)])
    assert result.status is ResultStatus.transient
    assert result.error.reason.startswith(reason)
    assert adapter.send([sms(2)])[0].ok


def test_connection_refused_is_transient(fake_twilio):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = make_adapter(fake_twilio, base_url=f"http://127.0.0.1:{port}")
    (result,) = adapter.send([sms(1)])
    assert result.status is ResultStatus.transient and result.error.reason.startswith("connection_error")


def test_bad_credentials_are_permanent_unauthorized(fake_twilio):
    (result,) = make_adapter(fake_twilio, auth_token="wrong").send([sms(1)])
    assert result.error.reason is PermanentReason.unauthorized


def test_a_sender_is_required():
    with pytest.raises(ConfigurationError, match="ORCH_TWILIO_FROM_NUMBER"):
        TwilioSmsAdapter(account_sid="AC1", auth_token="token")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("bypassed", [False, True])
def test_a_proxy_in_the_environment_still_carries_the_requests(monkeypatch, fake_twilio, bypassed):
    """The SDK's session reads the proxy settings once, when it is made, as requests would per request."""
    proxy = f"http://127.0.0.1:{_closed_port()}"  # a proxy that is down: a request through it fails
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1" if bypassed else "")
    adapter = make_adapter(fake_twilio)
    try:
        (result,) = adapter.send([sms(1)])
    finally:
        adapter.close()
    if bypassed:
        assert result.ok
    else:
        assert result.status is ResultStatus.transient and result.error.reason.startswith("connection_error")


def test_the_environment_is_not_read_again_for_every_message(monkeypatch, fake_twilio, adapter):
    import urllib.request

    adapter.send([sms(i) for i in range(100, 120)])  # every worker thread has its session now
    reads = []
    real = urllib.request.getproxies_environment
    monkeypatch.setattr(urllib.request, "getproxies_environment", lambda: reads.append(1) or real())
    assert all(r.ok for r in adapter.send([sms(i) for i in range(2, 22)]))
    assert reads == []
