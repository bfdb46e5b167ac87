"""The outage notice end to end: affected customers once per update, one post, calls, fallback, resolution."""

from __future__ import annotations

import json
import threading

import pytest
from sqlmodel import select

from flows.outage import outage_notice
from orchestrator.db import session_scope
from orchestrator.ledger.incidents import find_incident
from orchestrator.models import IncidentUpdate, MessageStatus, PhoneTask, Suppression
from orchestrator.outage_notice import affected_filter
from orchestrator.policy.explain_reach import Audience, why_not_reached
from tests.support.fakes.twilio import INVALID_NUMBER
from tests.support.flow_world import (
    add_customer,
    artifacts,
    by_customer,
    flow_run,
    ledger,
    task_runs,
    use_fake_providers,
)
from tests.support.zones import NIGHT

INCIDENT = {"incident_id": "inc-42", "severity": "major", "title": "Card payments are failing",
            "summary": "We are rolling out a fix", "affected": {"region": "eu"},
            "status_page_url": "https://status.example.com/inc-42"}


@pytest.fixture
def providers(monkeypatch, fake_sendgrid, fake_twilio, fake_x):
    use_fake_providers(monkeypatch, sendgrid=fake_sendgrid, twilio=fake_twilio, x=fake_x)
    return fake_sendgrid, fake_twilio, fake_x


def notify(status: str, **overrides):
    return outage_notice(**{**INCIDENT, "status": status, "chunk_size": 2, **overrides}, return_state=True)


def test_an_update_reaches_the_affected_customers_once_with_one_post_and_calls_for_premium(
        prefect_harness, sqlite_url, providers):
    sendgrid, twilio, x = providers
    ada = add_customer("ada", email="ada@example.com", region="eu")
    vip = add_customer("vip", email="vip@example.com", phone="+14155550111", tier="premium", region="eu")
    sms = add_customer("sms", phone="+14155550122", region="eu")
    far = add_customer("far", email="far@example.com", region="us")

    state = notify("investigating")

    assert state.is_completed()
    rows = ledger("incident:inc-42:investigating")
    email, text, calls = (by_customer(rows, ch) for ch in ("email", "sms", "phone"))
    assert set(email) == {ada, vip} and set(text) == {sms} and set(calls) == {vip}
    assert {m.status for m in rows.values()} == {MessageStatus.sent}
    assert sorted(r.address for r in sendgrid.requests) == ["ada@example.com", "vip@example.com"]
    assert [r.data["To"] for r in twilio.requests] == ["+14155550122"]
    assert "high_touch:premium-major-outage" in calls[vip].reason_codes
    with session_scope() as s:
        (call,) = s.exec(select(PhoneTask)).all()
    assert call.customer_id == vip and call.message_id == calls[vip].id
    (post,) = x.posts()
    assert "card payments are failing" in post and "https://status.example.com/inc-42" in post

    run_id = state.state_details.flow_run_id
    assert flow_run(run_id).name == "outage-inc-42-investigating"
    names = {t.name for t in task_runs(run_id)}
    assert {"post-inc-42-investigating", f"reserve-{ada}-to-{vip}", f"dispatch-{ada}-to-{vip}",
            f"reserve-{sms}-to-{sms}", f"dispatch-{sms}-to-{sms}"} <= names  # each chunk dispatched alone
    table = json.loads(artifacts(run_id)["outage-inc-42-investigating-outcomes"].data)
    assert {"channel": "phone", "status": "sent", "reason": "-", "messages": 1} in table

    # The same update triggered again (a retried webhook, an impatient operator) notifies nobody twice.
    again = notify("investigating")
    assert again.result()["reserved"] == {"duplicate": 4}
    assert again.result()["post"] == {"posted": False, "reason": "already posted for this update"}
    assert len(sendgrid.requests) == 2 and len(twilio.requests) == 1 and len(x.posts()) == 1
    with session_scope() as s:
        assert len(s.exec(select(PhoneTask)).all()) == 1
        assert [u.status for u in s.exec(select(IncidentUpdate)).all()] == ["investigating"]
        # The customer outside the affected region is told why the notice missed them.
        missed = why_not_reached(s, far, Audience.of_incident(find_incident(s, "inc-42")))
    assert missed.reason == "not_in_audience" and missed.unmet == [{"attributes.region": "eu"}]


def test_resolved_cancels_notices_still_waiting_and_tells_everyone_who_heard(prefect_harness, sqlite_url,
                                                                            providers):
    sendgrid, twilio, x = providers
    ada = add_customer("ada", email="ada@example.com", region="eu")
    owl = add_customer("owl", phone="+14155550133", hour=NIGHT, region="eu")  # SMS waits for the morning
    notify("investigating")
    assert by_customer(ledger("incident:inc-42:investigating"))[owl].status == MessageStatus.deferred

    state = notify("resolved", summary="a faulty configuration change, now rolled back")

    result = state.result()
    assert result["cancelled"] == 1 and result["audience"] == 1
    earlier = by_customer(ledger("incident:inc-42:investigating"))
    assert earlier[owl].status == MessageStatus.cancelled
    assert earlier[owl].reason_codes[-1] == "superseded:resolved"
    resolved = by_customer(ledger("incident:inc-42:resolved"))
    assert set(resolved) == {ada} and resolved[ada].status == MessageStatus.sent
    assert resolved[ada].template == "outage_resolved"
    assert [r.address for r in sendgrid.requests] == ["ada@example.com", "ada@example.com"]
    assert twilio.requests == []  # the night owl hears nothing at all: neither the notice nor the all-clear
    assert len(x.posts()) == 2 and "faulty configuration change" in x.posts()[1]
    assert result["first_update"] == "investigating"


def test_a_resolution_nobody_was_told_about_reaches_no_one_and_says_why(prefect_harness, sqlite_url,
                                                                        providers, capsys):
    from orchestrator.cli.flow_runs import print_flow_summary

    sendgrid, _, _ = providers
    add_customer("ada", email="ada@example.com", region="eu")

    result = notify("resolved", summary="a blip", social_post=False).result()

    assert (result["first_update"], result["audience"], sendgrid.requests) == ("resolved", 0, [])
    print_flow_summary(result, "Incident inc-42: resolved")
    assert "No earlier update of this incident was sent" in " ".join(capsys.readouterr().out.split())


def test_resolved_without_a_title_says_what_was_resolved_and_closes_the_agents_calls(
        prefect_harness, sqlite_url, providers):
    sendgrid, _, x = providers
    vip = add_customer("vip", email="vip@example.com", phone="+14155550111", tier="premium", region="eu")
    notify("investigating")  # with its title and status page: a call for the premium account
    with session_scope() as s:
        (call,) = s.exec(select(PhoneTask)).all()
    assert call.status == "open"

    result = notify("resolved", title=None, status_page_url=None,
                    summary="a faulty configuration change, now rolled back").result()

    resolved = by_customer(ledger("incident:inc-42:resolved"), "email")[vip]
    assert resolved.data["incident_title"] == "Card payments are failing"  # the earlier title
    assert resolved.data["status_page_url"] == "https://status.example.com/inc-42"  # and page
    assert "Card payments are failing" in sendgrid.delivered(sendgrid.requests[-1])["text"]
    assert "card payments are failing" in x.posts()[-1] and "status.example.com/inc-42" in x.posts()[-1]
    with session_scope() as s:
        (call,) = s.exec(select(PhoneTask)).all()
    assert call.status == "cancelled" and "resolved at" in call.outcome
    assert "Card payments are failing" in call.outcome
    assert (result["calls_closed"], result["calls_rewritten"]) == (1, 0)


def test_an_invalid_number_falls_back_to_email(prefect_harness, sqlite_url, providers):
    sendgrid, twilio, _ = providers
    cid = add_customer("ada", email="ada@example.com", phone=INVALID_NUMBER, prefer=["sms"], region="eu")

    result = notify("investigating").result()

    rows = ledger("incident:inc-42:investigating")
    first = by_customer(rows, "sms")[cid]
    fallback = by_customer(rows, "email")[cid]
    assert first.status == MessageStatus.failed and first.reason_codes[-1] == "permanent:invalid_address"
    assert fallback.status == MessageStatus.sent
    assert fallback.dedupe_key == "incident:inc-42:investigating>fallback:sms"
    assert fallback.reason_codes[0] == "fallback:sms->email"
    assert len(twilio.requests_for(first.id)) == 1 and len(sendgrid.requests_for(fallback.id)) == 1
    assert result["fallbacks"] == {"planned": 1}
    with session_scope() as s:
        assert s.exec(select(Suppression.address)).all() == [INVALID_NUMBER]

    notify("investigating")  # a re-run neither retries the bad number nor sends the email again
    assert len(twilio.requests) == 1 and len(sendgrid.requests) == 1


def test_simultaneous_triggers_of_one_update_notify_once(prefect_harness, pg_url, providers):
    sendgrid, _, x = providers
    ids = [add_customer(f"c{i}", email=f"c{i}@example.com", region="eu") for i in range(6)]
    results: list = []

    def trigger() -> None:
        results.append(notify("identified"))

    threads = [threading.Thread(target=trigger) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(state.is_completed() for state in results)
    assert sorted(m.customer_id for m in ledger("incident:inc-42:identified").values()) == ids
    assert sorted(r.address for r in sendgrid.requests) == sorted(f"c{i}@example.com" for i in range(6))
    assert len(x.posts()) == 1


def test_affected_attributes_become_a_segment_filter():
    assert affected_filter({"region": "eu", "tier": "premium", "attr.plan": "scale"}) == {
        "attributes.region": "eu", "tier": "premium", "attr.plan": "scale"}
    assert affected_filter(None) is None


def test_a_deployment_run_missing_its_summary_is_refused_when_submitted_with_the_reason(prefect_harness):
    """What `prefect deployment run outage-notice/outage-notice -p incident_id=INC-1 -p status=...`
    does: the deployment's parameter schema says what is required, so no run starts (and fails)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.deployments import run_deployment
    from prefect.exceptions import PrefectHTTPStatusError

    deployment_id = outage_notice.to_deployment(name="outage-notice-schema").apply()
    of_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    name = "outage-notice/outage-notice-schema"
    for missing, parameters, reason in (
            ("summary", {"incident_id": "INC-1", "status": "investigating"}, "'summary' is a required"),
            ("an id", {"incident_id": "", "status": "resolved", "summary": "Fixed"}, "incident_id"),
            ("a status", {"incident_id": "INC-1", "status": "fixed", "summary": "Fixed"}, "status")):
        with pytest.raises(PrefectHTTPStatusError) as refused:
            run_deployment(name, parameters=parameters, timeout=0)
        assert reason in str(refused.value), missing
    with get_client(sync_client=True) as client:
        assert client.read_flow_runs(deployment_filter=of_deployment) == []  # no run, red or otherwise
    run = run_deployment(name, parameters={"incident_id": "INC-1", "status": "investigating",
                                           "summary": "Card payments are failing"}, timeout=0)
    assert run.state is not None and run.state.is_scheduled()


def test_the_first_chunk_is_cut_small_and_every_customer_is_in_exactly_one_chunk():
    from flows.outage import FIRST_CHUNK_SIZE
    from flows.pipeline import chunk_ranges

    class Audience:
        def __init__(self, n: int) -> None:
            self.ids = list(range(1, n + 1))

        def chunks(self, size: int):
            return (self.ids[i : i + size] for i in range(0, len(self.ids), size))

    def ranges(n: int) -> list[tuple[int, int]]:
        return [(c.first, c.last) for c in chunk_ranges(Audience(n), None, 500, first=FIRST_CHUNK_SIZE)]

    assert ranges(1200) == [(1, FIRST_CHUNK_SIZE), (FIRST_CHUNK_SIZE + 1, 500), (501, 1000), (1001, 1200)]
    assert ranges(30) == [(1, 30)]


def test_sms_paced_at_its_rate_all_go_out_in_the_run_and_the_email_lane_does_not_wait_for_them(
        prefect_harness, sqlite_url, providers, tmp_path, monkeypatch):
    import yaml

    from orchestrator.settings import REPO_ROOT, get_settings

    policy = yaml.safe_load((REPO_ROOT / "policy.yaml").read_text())
    policy["rates"] = {"sms": "2/s"}
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    monkeypatch.setenv("ORCH_POLICY_FILE", str(tmp_path / "policy.yaml"))
    get_settings.cache_clear()
    sendgrid, twilio, _ = providers
    texts = [add_customer(f"sms{i}", phone=f"+1415555013{i}", region="eu") for i in range(6)]
    mails = [add_customer(f"mail{i}", email=f"mail{i}@example.com", region="eu") for i in range(2)]

    state = notify("investigating", chunk_size=4, social_post=False)

    result = state.result()
    rows = ledger("incident:inc-42:investigating")
    assert set(by_customer(rows, "sms")) == set(texts) and set(by_customer(rows, "email")) == set(mails)
    assert {m.status for m in rows.values()} == {MessageStatus.sent}  # the run followed the waiting SMS
    assert result["dispatched"]["sent"] == 8 and result["dispatched"]["deferred"] == 0  # counted once
    assert any("pace:sms" in m.reason_codes for m in rows.values())  # some waited for their slot
    assert max(twilio.per_second_counts()) <= 2 + 1  # the rate and its burst of one
    sms_times = sorted(r.received_at for r in twilio.accepted())
    assert sms_times[-1] - sms_times[0] >= 2.0  # 6 at 2/s
    assert max(r.received_at for r in sendgrid.accepted()) < sms_times[-1] - 1.0  # email did not wait
    names = {t.name for t in task_runs(state.state_details.flow_run_id)}
    assert "dispatch-paced" in names


def test_a_notice_holds_bulk_work_back_while_it_runs_and_sends_its_first_chunk_before_reserving_more(
        prefect_harness, sqlite_url, providers, monkeypatch):
    import time

    import flows.common
    import flows.outage
    import flows.pipeline
    from orchestrator.pacing import budget, urgency

    for i in range(5):
        add_customer(f"c{i}", email=f"c{i}@example.com", region="eu")
    events: list[tuple[str, bool]] = []

    def held() -> bool:
        return budget.held_until(urgency.URGENT_WORK) > time.time()

    def spy(what: str, real):
        def call(*args, **kwargs):
            events.append((what, held()))
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(flows.pipeline, "reserve_chunk", spy("reserve", flows.pipeline.reserve_chunk))
    monkeypatch.setattr(flows.common, "dispatch_due", spy("dispatch", flows.common.dispatch_due))
    monkeypatch.setattr(flows.outage, "FIRST_CHUNK_SIZE", 1)

    assert notify("investigating", chunk_size=2, social_post=False).is_completed()

    assert [what for what, _ in events[:3]] == ["reserve", "dispatch", "reserve"]  # the first chunk alone
    assert all(marked for _, marked in events)  # bulk work was held back all along
    assert not held()  # and goes on once the notice is done
    assert {m.status for m in ledger("incident:inc-42:investigating").values()} == {MessageStatus.sent}


def test_an_unknown_segment_or_a_bad_filter_fails_the_notice_before_anything_is_recorded(
        prefect_harness, sqlite_url, providers):
    add_customer("ada", email="ada@example.com", region="eu")

    for bad in ({"segment": "no-such-segment"}, {"affected": {"no such field!": "x"}}):
        state = notify("investigating", **bad)
        assert state.is_failed()
    with session_scope() as s:
        assert s.exec(select(IncidentUpdate)).all() == []
    assert ledger() == {} and providers[0].requests == []
