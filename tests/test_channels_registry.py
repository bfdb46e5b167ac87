"""Adapters are found by name through entry points; configuration picks one per channel."""

from __future__ import annotations

import importlib
import textwrap

import pytest

from channels.base import ChannelAdapter, ConfigurationError, OutboundMessage
from channels.registry import adapter_for, available_adapters, load_adapter
from channels.sendgrid.adapter import SendGridEmailAdapter
from channels.twilio.adapter import TwilioSmsAdapter
from channels.x.adapter import XSocialAdapter
from orchestrator.local_channels.outbox import OutboxAdapter
from orchestrator.local_channels.phone import PhoneTaskAdapter
from orchestrator.settings import get_settings


def settings_with(monkeypatch, **env):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


def test_the_built_in_adapters_are_registered():
    assert {"outbox", "sendgrid", "twilio", "x", "phone"} <= set(available_adapters())
    assert isinstance(load_adapter("outbox", channel="sms"), ChannelAdapter)


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigurationError, match=r"no channel adapter named 'pigeon'.*outbox.*sendgrid"):
        load_adapter("pigeon")


def test_without_credentials_every_channel_uses_the_local_outbox():
    for channel in ("email", "sms", "social"):
        adapter = adapter_for(channel)
        assert isinstance(adapter, OutboxAdapter) and adapter.channel == channel
    assert isinstance(adapter_for("phone"), PhoneTaskAdapter)  # the agents' queue needs no provider


def test_credentials_in_the_environment_switch_to_the_provider(monkeypatch):
    settings = settings_with(
        monkeypatch,
        ORCH_SENDGRID_API_KEY="SG.key",
        ORCH_TWILIO_ACCOUNT_SID="AC123",
        ORCH_TWILIO_AUTH_TOKEN="token",
        ORCH_TWILIO_FROM_NUMBER="+15550001111",
        ORCH_X_CONSUMER_KEY="a",
        ORCH_X_CONSUMER_SECRET="b",
        ORCH_X_ACCESS_TOKEN="c",
        ORCH_X_ACCESS_TOKEN_SECRET="d",
    )
    assert isinstance(adapter_for("email", settings), SendGridEmailAdapter)
    assert isinstance(adapter_for("sms", settings), TwilioSmsAdapter)
    assert isinstance(adapter_for("social", settings), XSocialAdapter)


def test_incomplete_credentials_keep_the_outbox(monkeypatch):
    settings = settings_with(monkeypatch, ORCH_TWILIO_ACCOUNT_SID="AC123", ORCH_TWILIO_AUTH_TOKEN="token")
    assert isinstance(adapter_for("sms", settings), OutboxAdapter)  # no sender number: not configured


def test_configuration_chooses_the_adapter_per_channel(monkeypatch):
    settings = settings_with(
        monkeypatch,
        ORCH_SENDGRID_API_KEY="SG.key",
        ORCH_CHANNEL_ADAPTERS='{"email": "outbox", "sms": "sendgrid"}',
    )
    assert isinstance(adapter_for("email", settings), OutboxAdapter)
    with pytest.raises(ConfigurationError, match="serves 'email', not 'sms'"):
        adapter_for("sms", settings)


PLUGIN = """
from channels.base import Limits, ResultStatus, SendResult


class WhatsAppAdapter:
    name = "whatsapp"
    channel = "whatsapp"
    provider = "acme-whatsapp"

    def __init__(self, token="default"):
        self.token = token
        self.limits = Limits(max_batch=10)

    def send(self, batch):
        ok = ResultStatus.accepted
        return [SendResult(m.message_id, ok, self.provider, f"wa-{m.message_id}") for m in batch]

    def close(self):
        pass
"""


def test_a_third_party_package_adds_a_channel_without_touching_the_core(tmp_path, monkeypatch):
    # An installed distribution as importlib.metadata sees it: the module plus its dist-info.
    site = tmp_path / "site"
    (site / "acme_whatsapp").mkdir(parents=True)
    (site / "acme_whatsapp" / "__init__.py").write_text(PLUGIN)
    dist_info = site / "acme_whatsapp-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-whatsapp\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [orchestrator.channels]
            whatsapp = acme_whatsapp:WhatsAppAdapter
            """
        )
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()

    assert available_adapters()["whatsapp"] == "acme_whatsapp:WhatsAppAdapter"
    adapter = load_adapter("whatsapp", token="secret")
    assert adapter.token == "secret" and isinstance(adapter, ChannelAdapter)

    settings = settings_with(monkeypatch, ORCH_CHANNEL_ADAPTERS='{"whatsapp": "whatsapp"}')
    chosen = adapter_for("whatsapp", settings)
    (result,) = chosen.send([OutboundMessage(message_id=3, channel="whatsapp", to="+14155550100", body="hi")])
    assert result.ok and result.provider_message_id == "wa-3"
