from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from orchestrator.policy import PolicyError, load_policy, parse_policy
from orchestrator.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "policy.yaml"


def shipped_data() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


def test_shipped_policy_declares_topics_caps_and_quiet_hours():
    policy = load_policy(SHIPPED)
    for name in ("security", "outage", "transactional", "support", "loyalty", "feedback", "marketing"):
        assert name in policy.topics
    assert policy.topics["security"].bypass_caps and policy.topics["security"].bypass_quiet_hours
    assert policy.topics["security"].required
    assert not policy.topics["transactional"].counts_toward_caps
    caps = {c.name: c for c in policy.caps}
    assert (caps["marketing-2d"].max, caps["marketing-2d"].window) == (1, timedelta(days=2))
    assert (caps["sms-1d"].channel, caps["sms-1d"].window) == ("sms", timedelta(days=1))
    assert policy.quiet_hours["sms"].start.hour == 21 and policy.quiet_hours["phone"].end.hour == 8
    # Topics that do not count toward caps are not limited by shared rules.
    assert policy.caps_for("transactional", "sms") == []
    marketing_sms = [c.name for c in policy.caps_for("marketing", "sms")]
    assert marketing_sms == ["marketing-2d", "non-critical-1w", "sms-1d"]


def test_default_policy_path_comes_from_settings(tmp_path, monkeypatch):
    data = shipped_data()
    data["topics"]["marketing"]["priority"] = 7
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ORCH_POLICY_FILE", str(path))
    from orchestrator.settings import get_settings

    get_settings.cache_clear()
    assert load_policy().topics["marketing"].priority == 7


def test_equally_ranked_channels_are_ordered_by_cost():
    data = shipped_data()
    data["topics"]["outage"]["channels"] = ["email", ["sms", "social"]]
    data["channels"] = {"email": {"cost": 1}, "sms": {"cost": 5}, "social": {"cost": 2}}
    assert parse_policy(data).topics["outage"].channels == ["email", "social", "sms"]
    data["channels"]["sms"]["cost"] = 0.5
    assert parse_policy(data).topics["outage"].channels == ["email", "sms", "social"]


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["topics"]["marketing"].update(when_capped="later"), "topics.marketing.when_capped"),
        (lambda d: d["caps"][0].update(window="2 fortnights"), "caps[0].window: window must look like"),
        (lambda d: d["caps"][1].update(max=0), "caps[1].max"),
        (lambda d: d["caps"][2].update(channel="fax"), "caps[2].channel"),
        (lambda d: d["caps"][0].update(topics=["spam"]), "caps[0].topics: unknown topic 'spam'"),
        (lambda d: d["quiet_hours"]["sms"].update(start="25:00"), "quiet_hours.sms.start"),
        (lambda d: d["topics"]["support"].update(channels=["email", "pigeon"]), "topics.support.channels"),
        (lambda d: d["topics"]["support"].update(colour="red"), "topics.support.colour"),
        (lambda d: d["high_touch"][0].update(topics=["nope"]), "high_touch[0].topics: unknown topic"),
        (lambda d: d.pop("topics"), "topics: Field required"),
        # numbers past any sane bound (a year, a million) are errors, not overflows at send time
        (lambda d: d["caps"][0].update(window="99999999w"), "caps[0].window: window '99999999w' is longer"),
        (lambda d: d["caps"][1].update(window="9" * 5000 + "h"), "caps[1].window: window must look like"),
        (lambda d: d["caps"][2].update(window="367d"), "caps[2].window: window '367d' is longer than 366d"),
        (lambda d: d["caps"][0].update(max=10**30), "caps[0].max"),
        (lambda d: d.update(preference_caps={"weekly": "99999999999h"}), "preference_caps.weekly: window"),
        (lambda d: d["topics"]["marketing"].update(priority=2**40), "topics.marketing.priority"),
        (lambda d: d.update(channels={"sms": {"cost": float("inf")}}), "channels.sms.cost"),
        (lambda d: d.update(channels={"sms": {"cost": float("nan")}}), "channels.sms.cost"),
    ],
)
def test_errors_name_the_key_path(mutate, expected):
    data = shipped_data()
    mutate(data)
    with pytest.raises(PolicyError) as info:
        parse_policy(data, "policy.yaml")
    assert expected in str(info.value)


def test_unreadable_or_broken_files_give_clear_errors(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("topics: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(broken)


def test_unknown_topic_is_a_clear_error():
    with pytest.raises(PolicyError, match="unknown topic 'newsletter'"):
        load_policy(SHIPPED).topic("newsletter")
