"""No secret, phone number or email address of the fixtures in logs or Prefect artifacts.

A campaign and an outage notice (with a provider refusing a number, an opted-out number and a
social post) run under the Prefect test server with every logger at DEBUG. Scanned: what every
in-process handler wrote, pytest's own captured log, the logs the Prefect API stored for the runs
(what the UI shows) and every artifact of the runs.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler

from flows.campaign import campaign
from flows.common import PREFECT_LOGGERS
from flows.outage import outage_notice
from orchestrator.settings import get_settings
from tests.support.fakes import FakeSendGrid, FakeTwilio
from tests.support.fakes.twilio import INVALID_NUMBER
from tests.support.flow_world import MARKETING_FACTS, add_customer, artifacts, use_fake_providers

SECRETS = {
    "ORCH_SENDGRID_API_KEY": "SG.privacy-sendgrid-api-key-4711",
    "ORCH_TWILIO_AUTH_TOKEN": "privacy-twilio-auth-token-4711",
    "ORCH_X_CONSUMER_SECRET": "privacy-x-consumer-secret-4711",
    "ORCH_X_ACCESS_TOKEN_SECRET": "privacy-x-access-token-secret-4711",
    "ORCH_SECRET_KEY": "privacy-link-signing-key-4711",
    "ORCH_INCIDENT_TOKEN": "privacy-incident-token-4711",
}
EMAILS = ["grace.hopper@example.com", "alan.turing@example.org", "hedy.lamarr@example.net"]
PHONES = ["+14155550123", "+447700900461", INVALID_NUMBER, "+14155550188"]


@pytest.fixture
def everything_logged() -> Iterator[io.StringIO]:
    """A DEBUG handler on the root and on Prefect's own loggers (some do not propagate)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in PREFECT_LOGGERS)]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    yield stream
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(handler)
        lg.setLevel(level)


def _leaks(text: str, secret_values: list[str]) -> list[str]:
    digits = "".join(c for c in text if c.isdigit() or c == "+")
    found = [s for s in [*secret_values, *EMAILS] if s in text]
    found += [p for p in PHONES if p in text or p in digits or p.lstrip("+") in text]
    return found


@pytest.mark.slow
def test_flows_leave_no_personal_data_or_secret_in_logs_or_artifacts(
        prefect_harness, sqlite_url, monkeypatch, caplog, everything_logged, fake_x, figure):
    caplog.set_level(logging.DEBUG)
    with FakeSendGrid(api_key=SECRETS["ORCH_SENDGRID_API_KEY"]) as sendgrid, \
            FakeTwilio(auth_token=SECRETS["ORCH_TWILIO_AUTH_TOKEN"]) as twilio:
        use_fake_providers(monkeypatch, sendgrid=sendgrid, twilio=twilio, x=fake_x)
        for key, value in SECRETS.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        for n, email in enumerate(EMAILS):
            add_customer(f"p{n}", email=email, phone=PHONES[n], region="eu", tier="premium")
        add_customer("p-text-only", phone=PHONES[3], region="eu")
        add_customer("p-bad-number", phone=INVALID_NUMBER, region="eu")
        twilio.opted_out.add(PHONES[3])
        sendgrid.fail_next(1, "unavailable")  # an error path with the provider's answer in it

        runs = [
            campaign(name="privacy", segment="all", template="spring_sale", data=MARKETING_FACTS,
                     chunk_size=2, return_state=True),
            outage_notice(incident_id="inc-privacy", status="investigating", severity="major",
                          title="Card payments are failing", summary="A fix is rolling out",
                          affected={"region": "eu"}, chunk_size=2, return_state=True),
        ]
        sent = len(sendgrid.accepted()) + len(twilio.accepted())
        refused = sum(1 for r in twilio.requests if r.status and r.status >= 400)

    assert all(state.is_completed() for state in runs)
    assert sent >= 4 and refused >= 2  # messages really went out, and providers really refused some
    APILogHandler().flush()  # logs reach the API in batches
    run_ids = [state.state_details.flow_run_id for state in runs]
    with get_client(sync_client=True) as client:
        api_logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=run_ids)))
    found = [a for run_id in run_ids for a in artifacts(run_id).values()]
    artifact_text = json.dumps([[a.key, a.description, a.data] for a in found], default=str)
    api_text = "\n".join(log.message for log in api_logs)
    handler_text = everything_logged.getvalue()
    secrets = list(SECRETS.values())

    everything = handler_text + caplog.text + api_text + artifact_text
    figure("privacy", f"campaign + outage notice under the Prefect server at DEBUG: "
           f"{len(handler_text.splitlines())} handler lines, {len(caplog.records)} captured records, "
           f"{len(api_logs)} API log entries, {len(found)} artifacts scanned for {len(EMAILS)} emails, "
           f"{len(PHONES)} phones, {len(secrets)} secrets: {len(set(_leaks(everything, secrets)))} found")
    assert len(api_logs) > 0 and len(found) > 0 and "***" in api_text + artifact_text  # masked, not missing
    for source in (handler_text, caplog.text, api_text, artifact_text):
        assert [line for line in source.splitlines() if _leaks(line, secrets)][:5] == []


# Addresses and numbers a log line may carry, and text that only looks like them.
MUST_MASK = {
    "ascii email": ("bounce for grace.hopper@example.com (550)", "grace.hopper@example.com"),
    "idn domain": ("to josé.garcía@exämple.de", "exämple.de"),
    "cyrillic tld": ("to ivan@пример.рф", "пример.рф"),
    "chinese address": ("to 用户@例子.广告", "用户@例子.广告"),
    "ideographic dot": ("to 用户@例子。中国", "例子。中国"),
    "devanagari tld": ("to ajay@डाटामेल.भारत", "डाटामेल.भारत"),
    "greek address": ("to δοκιμή@παράδειγμα.δοκιμή", "παράδειγμα.δοκιμή"),
    "punycode tld": ("to ivan@xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai"),
    "e164": ("sms to +14155550123 failed", "4155550123"),
    "spaced international": ("call +44 7700 900461 back", "7700 900461"),
    "us national": ("call (415) 555-0123 now", "555-0123"),
    "dotted national": ("number 415.555.0123 invalid", "415.555.0123"),
    "uk national": ("number 07700 900461 invalid", "07700 900461"),
    "key value": ("phone=4155550123", "4155550123"),
    "date-like prefix": ("number 2026113008 invalid", "2026113008"),
    "international, dashed like a date": ("call +2026-11-30 08 now", "2026-11-30 08"),
    "no valid date": ("number 2026-13-30 08 invalid", "2026-13-30 08"),
    "plus after hyphen": ("sms-+14155550123", "4155550123"),
}
MUST_KEEP = {
    "run name": "flow run dispatch-due-20261130-085446 started",
    "timestamp": "batch 20261130-085446 settled",
    "compact timestamp": "window 20261130085446 closed",
    "iso timestamp": "at 2026-11-30T08:54:46+00:00",
    "date and time": "deadline 2026-11-30 08:54 UTC passed",
    "date in brackets": "waits until quiet hours end (2026-11-30 08:00 America/New_York)",
    "date": "scheduled on 2026-11-30 at 08:00",
    "uuid": "run 123e4567-e89b-12d3-a456-426614174000",
    "decimal": "ratio 0.4615384615 of sends",
    "external id": "customer cust-4155550123 imported",
    "incident": "incident INC-20261130-1 resolved",
    "count": "1234567 rows in 12345678 ms",
    "package version": "installed pkg@1.2.3",
}


@pytest.mark.parametrize("case", sorted(MUST_MASK))
def test_log_masking_hides_internationalised_emails_and_phone_numbers(case):
    from orchestrator.privacy import redact_text

    text, secret = MUST_MASK[case]
    assert secret not in redact_text(text)
    assert "***" in redact_text(text)


@pytest.mark.parametrize("case", sorted(MUST_KEEP))
def test_log_masking_leaves_what_is_not_an_address_alone(case):
    from orchestrator.privacy import redact_text

    assert redact_text(MUST_KEEP[case]) == MUST_KEEP[case]


def test_log_masking_figures(figure):
    figure("privacy (masking)", f"{len(MUST_MASK)} log lines with emails (IDN domains and TLDs in 5 "
           f"scripts, punycode) and phone numbers masked; {len(MUST_KEEP)} lines with run names, time "
           "stamps, ids and decimals left as they are")
