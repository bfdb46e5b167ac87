"""The Twilio adapter's default send rate (``ORCH_TWILIO_RATE``, a long code's 1 SMS per second unless
set): honoured when the policy's ``rates:`` is silent about SMS, replaced by a rate it declares for
the channel or the adapter. Counted at a fake Twilio that answers 429 beyond the rate."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from channels.twilio.adapter import TwilioSmsAdapter
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import MessageStatus
from orchestrator.pacing.budget import lane_state
from orchestrator.settings import REPO_ROOT, get_settings
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def use_fake_twilio(monkeypatch, fake_twilio, rate: str | None) -> None:
    for key, value in {"ORCH_TWILIO_ACCOUNT_SID": fake_twilio.account_sid,
                       "ORCH_TWILIO_AUTH_TOKEN": fake_twilio.auth_token,
                       "ORCH_TWILIO_FROM_NUMBER": "+15557654321",
                       "ORCH_TWILIO_BASE_URL": fake_twilio.url}.items():
        monkeypatch.setenv(key, value)
    if rate is None:
        monkeypatch.delenv("ORCH_TWILIO_RATE", raising=False)
    else:
        monkeypatch.setenv("ORCH_TWILIO_RATE", rate)
    get_settings.cache_clear()


def use_rates(tmp_path, monkeypatch, rates: dict | None) -> None:
    data = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    data.pop("rates", None)
    if rates is not None:
        data["rates"] = rates
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ORCH_POLICY_FILE", str(path))
    get_settings.cache_clear()


def sent_per_second(fake_twilio) -> tuple[int, float]:
    """The most requests the fake accepted in one second, and their average rate over the run."""
    times = sorted(r.received_at for r in fake_twilio.accepted())
    return max(fake_twilio.per_second_counts()), (len(times) - 1) / (times[-1] - times[0])


def test_a_long_code_takes_one_message_a_second_unless_told_otherwise(monkeypatch, fake_twilio):
    use_fake_twilio(monkeypatch, fake_twilio, None)
    assert TwilioSmsAdapter().limits.rate_per_second == 1.0
    monkeypatch.setenv("ORCH_TWILIO_RATE", "0")  # none: only the policy paces SMS
    assert TwilioSmsAdapter().limits.rate_per_second is None
    monkeypatch.setenv("ORCH_TWILIO_RATE", "-1")
    with pytest.raises(ValidationError, match="rate"):
        TwilioSmsAdapter()


def test_the_adapter_default_paces_sms_when_the_policy_is_silent(sqlite_url, tmp_path, monkeypatch,
                                                                 fake_twilio):
    use_rates(tmp_path, monkeypatch, None)
    use_fake_twilio(monkeypatch, fake_twilio, "4")
    fake_twilio.enforce_rate(4, burst=1)
    ids = add_messages(add_customers(12), channel="sms", topic="outage", priority=90)

    report = dispatch_due(pace_patience=30)

    assert report.total("sent") == 12 and {m.status for m in messages(ids).values()} == {MessageStatus.sent}
    most, average = sent_per_second(fake_twilio)
    assert fake_twilio.rate_limited == 0 and most <= 4 + 1  # the burst of one
    assert average <= 4 * 1.1
    assert "sms" in lane_state(["sms"])  # the default is the channel's lane in the shared budget


@pytest.mark.parametrize("rates", [{"sms": "40/s"}, {"twilio": "40/s"}], ids=["channel", "adapter"])
def test_a_rate_in_the_policy_replaces_the_adapter_default(sqlite_url, tmp_path, monkeypatch, fake_twilio,
                                                           rates):
    use_rates(tmp_path, monkeypatch, rates)
    use_fake_twilio(monkeypatch, fake_twilio, "1")  # 20 messages would take 19 s at the default
    fake_twilio.enforce_rate(40, burst=4)
    ids = add_messages(add_customers(20), channel="sms", topic="outage", priority=90)

    report = dispatch_due(pace_patience=30)

    assert report.total("sent") == 20 and {m.status for m in messages(ids).values()} == {MessageStatus.sent}
    most, average = sent_per_second(fake_twilio)
    assert fake_twilio.rate_limited == 0 and most <= 40 + 4
    assert average > 5  # far faster than the default's 1 a second


def test_plan_counts_the_adapter_default_where_the_policy_is_silent(tmp_path, monkeypatch, fake_twilio):
    """`orchestrator plan` says when the last message goes out at the rates dispatch will keep: with
    Twilio set up and no SMS rate in the policy, its long code's rate; a policy rate replaces it;
    without Twilio the SMS go to the local outbox, which has no rate."""
    from collections import Counter
    from datetime import UTC, datetime, timedelta

    from orchestrator.policy.config import load_policy
    from orchestrator.policy.plan import last_send_estimate

    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    sending = Counter(sms=121, email=50)
    use_rates(tmp_path, monkeypatch, None)
    assert last_send_estimate(load_policy(), "outage", sending, at) == (None, None)  # no Twilio: the outbox
    use_fake_twilio(monkeypatch, fake_twilio, "2")
    last, by = last_send_estimate(load_policy(), "outage", sending, at)
    # 121 messages at 2 a second, the first two at once (the burst): the last about a minute later.
    assert by == "sms" and timedelta(seconds=58) <= last - at <= timedelta(seconds=61)
    use_rates(tmp_path, monkeypatch, {"twilio": "10/s"})
    last, by = last_send_estimate(load_policy(), "outage", sending, at)
    assert by == "twilio" and last - at <= timedelta(seconds=13)
