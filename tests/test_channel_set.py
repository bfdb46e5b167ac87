"""The channel set is data: what installed adapters declare, asked by policy, templating and segments."""

from __future__ import annotations

import pytest

from channels.base import AddressKind, ChannelSpec
from channels.channel_set import channel_spec, installed_channels
from orchestrator.policy.config import PolicyError, parse_policy
from orchestrator.privacy import mask_address
from orchestrator.segments import SegmentError, compile_filter


def test_built_in_channels_come_first_and_whatsapp_is_declared_by_its_adapter():
    names = list(installed_channels())
    assert names[:4] == ["email", "sms", "social", "phone"]
    whatsapp = channel_spec("whatsapp")
    assert whatsapp.conversational and whatsapp.opt_in_required
    assert whatsapp.variants == {"whatsapp": {"text": "whatsapp.txt"}}
    # SMS and calls share one address kind: the customer's phone number.
    assert channel_spec("sms").address is channel_spec("phone").address


def test_an_unknown_channel_in_the_policy_names_the_installed_ones():
    with pytest.raises(PolicyError) as exc:
        parse_policy({"topics": {"marketing": {"channels": ["carrier_pigeon"]}}})
    message = str(exc.value)
    assert "topics.marketing.channels: unknown channel 'carrier_pigeon'" in message
    assert "installed channels: email, sms, social, phone" in message and "whatsapp" in message


def test_costs_and_quiet_hours_default_to_the_channel_spec_unless_the_policy_says():
    policy = parse_policy({
        "topics": {"outage": {"channels": [["sms", "whatsapp"]]}},
        "quiet_hours": {"sms": {"start": "22:00", "end": "07:00"}},
    })
    # Equal rank: WhatsApp's declared cost (2) is above SMS's default (1).
    assert policy.topics["outage"].channels == ["sms", "whatsapp"]
    assert (policy.quiet_window("whatsapp").start.hour, policy.quiet_window("whatsapp").end.hour) == (21, 8)
    assert policy.quiet_window("sms").start.hour == 22
    assert policy.quiet_window("email") is None
    cheaper = parse_policy({"channels": {"whatsapp": {"cost": 0.5}},
                            "topics": {"outage": {"channels": [["sms", "whatsapp"]]}}})
    assert cheaper.topics["outage"].channels == ["whatsapp", "sms"]


def test_segments_has_accepts_any_installed_channel_and_refuses_others():
    compile_filter({"has": "whatsapp"})
    with pytest.raises(SegmentError, match="unknown channel 'pigeon'.*installed channels"):
        compile_filter({"has": "pigeon"})


def test_addresses_are_masked_by_their_kind():
    assert mask_address("whatsapp", "whatsapp:+14155550123") == "whatsapp:+***23"
    assert mask_address("email", "ada@example.com") == "a***@e***"
    assert mask_address("sms", "+14155550123") == "+***23"
    assert mask_address("nowhere", "secret") == "s***"


def test_a_spec_refuses_variants_that_are_not_its_own():
    kind = AddressKind("url", lambda value, _region: value)
    assert ChannelSpec("pager", kind).variants == {"pager": {"text": "pager.txt"}}
    with pytest.raises(ValueError, match="variant 'sms'"):
        ChannelSpec("pager", kind, variants={"sms": {"text": "sms.txt"}})
