"""WhatsApp through Twilio: the plug-in adapter, the real ``twilio`` SDK, the fake's WhatsApp rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from channels.base import ConfigurationError, OutboundMessage, PermanentReason, ResultStatus
from channels.registry import adapter_for
from channels.whatsapp.adapter import TwilioWhatsAppAdapter
from channels.whatsapp.settings import ContentTemplate, WhatsAppSettings, load_content_map
from orchestrator.local_channels.outbox import OutboxAdapter
from orchestrator.settings import get_settings
from tests.support.fakes import FakeTwilio, Fault

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OUTAGE_SID = "HX" + "a" * 32
DATA = {"incident_title": "Card payments are failing", "status_page_url": "https://status.example.com/1"}


def message(message_id: int, number: str = "+14155550101", *, wrote_hours_ago: float | None = None,
            template: str = "outage_notice", locale: str = "en") -> OutboundMessage:
    last = NOW - timedelta(hours=wrote_hours_ago) if wrote_hours_ago is not None else None
    return OutboundMessage(message_id=message_id, channel="whatsapp", to=f"whatsapp:{number}",
                           body="We're sorry: card payments are failing.", template=template, locale=locale,
                           data=dict(DATA), last_inbound_at=last)


def config(fake: FakeTwilio, **overrides) -> WhatsAppSettings:
    values = dict(account_sid=fake.account_sid, auth_token=fake.auth_token,
                  whatsapp_from="whatsapp:+14155238886", base_url=fake.url,
                  public_base_url="https://hooks.brand.example", timeout_seconds=0.5, concurrency=2)
    values.update(overrides)
    return WhatsAppSettings.model_validate(values)


@pytest.fixture
def fake(fake_twilio: FakeTwilio) -> FakeTwilio:
    fake_twilio.clock = lambda: NOW
    fake_twilio.whatsapp_users = {"+14155550101", "+14155550102"}
    fake_twilio.approved_content = {OUTAGE_SID: {"1", "2"}}
    return fake_twilio


@pytest.fixture
def adapter(fake: FakeTwilio):
    content = {"outage_notice": {"en": ContentTemplate(OUTAGE_SID, {"1": "incident_title",
                                                                    "2": "status_page_url"})}}
    adapter = TwilioWhatsAppAdapter(config=config(fake), content=content, clock=lambda: NOW)
    yield adapter
    adapter.close()


def test_inside_the_window_free_form_text_goes_out(adapter, fake):
    fake.customer_wrote("+14155550101", NOW - timedelta(hours=3))
    (result,) = adapter.send([message(1, wrote_hours_ago=3)])
    assert result.ok and result.provider == "twilio-whatsapp" and result.raw["template"] is False
    (request,) = fake.requests_for(1)
    assert request.data == {
        "To": "whatsapp:+14155550101", "From": "whatsapp:+14155238886",
        "Body": "We're sorry: card payments are failing.",
        "StatusCallback": "https://hooks.brand.example/webhooks/twilio/status?message_id=1",
    }


def test_outside_the_window_the_approved_template_goes_out_with_its_variables(adapter, fake):
    for hours_ago in (None, 30):
        message_id = 2 if hours_ago is None else 3
        (result,) = adapter.send([message(message_id, wrote_hours_ago=hours_ago, locale="en-GB")])
        assert result.ok and result.raw["template"] is True
        form = fake.requests_for(message_id)[0].data
        assert form["ContentSid"] == OUTAGE_SID and "Body" not in form
        variables = json.loads(form["ContentVariables"])
        assert variables == {"1": DATA["incident_title"], "2": DATA["status_page_url"]}


def test_outside_the_window_without_a_template_nothing_is_sent_and_the_policy_may_fall_back(adapter, fake):
    (result,) = adapter.send([message(4, template="security_alert")])
    assert result.status is ResultStatus.permanent
    assert result.error.reason is PermanentReason.outside_window
    assert "security_alert (en)" in result.error.detail
    assert fake.requests_for(4) == []


def test_twilio_refusals_become_permanent_reasons(adapter, fake):
    # We believed the window open, Twilio knows better: 63016.
    (closed,) = adapter.send([message(5, wrote_hours_ago=1)])
    assert closed.error.reason is PermanentReason.outside_window and closed.raw["code"] == 63016
    # A number that is not on WhatsApp: 63003.
    (absent,) = adapter.send([message(6, "+14155550199", wrote_hours_ago=1)])
    assert absent.error.reason is PermanentReason.invalid_address and absent.raw["code"] == 63003
    assert absent.error.suppress_reason == "not_on_whatsapp"  # as a status callback would say it
    # Twilio's error text repeats the number: it is not kept.
    assert "4155550199" not in json.dumps(absent.raw) + absent.error.detail
    fake.approved_content = {}
    (unknown,) = adapter.send([message(7)])
    assert unknown.error.reason is PermanentReason.rejected and unknown.raw["code"] == 63027


def test_provider_trouble_is_transient(adapter, fake):
    fake.fail_next(1, Fault.rate_limit)
    (limited,) = adapter.send([message(8)])
    assert limited.status is ResultStatus.transient and limited.error.reason == "rate_limited"
    fake.fail_next(1, Fault.unavailable)
    (down,) = adapter.send([message(9)])
    assert down.status is ResultStatus.transient and down.error.reason == "server_error:503"


def test_the_content_map_file_is_validated(tmp_path):
    path = tmp_path / "whatsapp_content.yaml"
    entry = f"{{content_sid: {OUTAGE_SID}, variables: {{'1': incident_title}}}}"
    path.write_text(f"outage_notice:\n  es: {entry}\n")
    assert load_content_map(path)["outage_notice"]["es"].variables == {"1": "incident_title"}
    path.write_text("outage_notice:\n  es: {content_sid: nope}\n")
    with pytest.raises(ConfigurationError, match="outage_notice.es: content_sid"):
        load_content_map(path)
    assert load_content_map(tmp_path / "absent.yaml") == {}


def test_the_registry_picks_the_adapter_when_its_credentials_are_set(monkeypatch, fake):
    assert isinstance(adapter_for("whatsapp"), OutboxAdapter)
    with pytest.raises(ConfigurationError, match="ORCH_TWILIO_WHATSAPP_FROM"):
        TwilioWhatsAppAdapter(config=config(fake, whatsapp_from=None))
    for key, value in {"ORCH_TWILIO_ACCOUNT_SID": fake.account_sid, "ORCH_TWILIO_AUTH_TOKEN": "t",
                       "ORCH_TWILIO_WHATSAPP_FROM": "whatsapp:+14155238886"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    chosen = adapter_for("whatsapp")
    assert isinstance(chosen, TwilioWhatsAppAdapter) and chosen.channel == "whatsapp"
    chosen.close()
