"""The dispatch-due flow under a real (temporary) Prefect server: chunks, artifacts, masked logs."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.logging.handlers import APILogHandler
from sqlalchemy.exc import OperationalError
from sqlmodel import select
from typer.testing import CliRunner

from flows.common import artifact_key, dispatch_markdown, run_name
from flows.dispatch_due import DispatchConfigurationError, dispatch_due_flow
from orchestrator.cli import app
from orchestrator.db import session_scope
from orchestrator.dispatch.report import DispatchReport
from orchestrator.ledger.changes import Failure
from orchestrator.models import MessageStatus, OutboxEntry, utcnow
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.zones import DAYTIME, local_zone


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


def _artifacts(flow_run_id) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_dispatch_due_flow_sends_in_chunks_flags_stuck_sends_and_reports(prefect_harness, sqlite_url):
    cids = add_customers(5)
    ids = add_messages(cids)
    sms = add_messages(cids[:2], channel="sms", dedupe="sms")
    (stuck,) = add_messages(cids[:1], status=MessageStatus.sending, dedupe="stuck",
                            updated_at=utcnow() - timedelta(minutes=30))

    state = dispatch_due_flow(chunk_size=3, return_state=True)

    assert state.is_completed()
    assert state.result() == {"sent": 7, "deferred": 0, "failed": 0, "suppressed": 0, "reconcile": 1}
    with session_scope() as s:
        outbox = s.exec(select(OutboxEntry)).all()
    assert sorted(e.message_id for e in outbox) == sorted(ids + sms)  # each exactly once, stuck one not
    assert messages([stuck])[stuck].status == MessageStatus.reconcile

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    names = sorted(t.name for t in tasks)
    assert [n for n in names if n.startswith("dispatch-")] == [f"dispatch-chunk-{i}-of-3" for i in (1, 2, 3)]
    assert sum(n.startswith("reconcile-stuck") for n in names) == 1

    artifacts = _artifacts(run_id)
    assert {"dispatch-due-outcomes", "dispatch-due-summary", "dispatch-due-progress"} <= set(artifacts)
    table = json.loads(artifacts["dispatch-due-outcomes"].data)
    assert [(row["channel"], row["sent"]) for row in table] == [("email", 5), ("sms", 2)]
    assert artifacts["dispatch-due-progress"].data == 100.0
    summary = artifacts["dispatch-due-summary"].data
    assert "Needs reconciling (1)" in summary and str(stuck) in summary


def test_an_unconfigured_channel_fails_the_run_and_keeps_messages_deferred(prefect_harness, sqlite_url,
                                                                           monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.setenv("ORCH_CHANNEL_ADAPTERS", '{"email": "no-such-adapter"}')
    get_settings.cache_clear()
    ids = add_messages(add_customers(2))

    state = dispatch_due_flow(return_state=True)

    assert state.is_failed()
    with pytest.raises(DispatchConfigurationError, match="no-such-adapter"):
        state.result()
    assert {m.status for m in messages(ids).values()} == {MessageStatus.deferred}
    summary = _artifacts(state.state_details.flow_run_id)["dispatch-due-summary"].data
    assert "Configuration errors" in summary


def test_a_message_that_fails_in_the_sweep_falls_back_once(prefect_harness, sqlite_url):
    """A fallback reserved when a status callback reported a late failure is sent by the sweep; a
    message that fails there goes on to the next channel of its route, as in a campaign."""
    from orchestrator.consent import suppress_address

    (cid,) = add_customers(1, timezone=local_zone(DAYTIME))  # the SMS fallback is outside quiet hours
    with session_scope() as s:
        suppress_address(s, "email", "ada0@example.com", "bounce", "test")
    (mid,) = add_messages([cid], dedupe="receipt", tone="professional")  # transactional: [email, sms]

    state = dispatch_due_flow(return_state=True)

    assert state.result() == {"sent": 1, "deferred": 0, "failed": 0, "suppressed": 1, "reconcile": 0}
    rows = sorted(messages().values(), key=lambda m: m.id)
    assert [(m.id, m.channel, m.status) for m in rows] == [
        (mid, "email", MessageStatus.suppressed), (rows[1].id, "sms", MessageStatus.sent)]
    assert rows[1].dedupe_key == f"receipt-{cid}>fallback:email"
    assert rows[1].reason_codes[0] == "fallback:email->sms"
    with session_scope() as s:
        assert [e.message_id for e in s.exec(select(OutboxEntry))] == [rows[1].id]
    # The next sweep finds nothing to do and no failure to fall back from again.
    assert dispatch_due_flow() == {"sent": 0, "deferred": 0, "failed": 0, "suppressed": 0, "reconcile": 0}
    assert len(messages()) == 2


@flow(name="chatty")
def chatty_flow() -> None:
    logger = get_run_logger()
    logger.info("sending to ada@example.com at +1 415 555 0123")
    try:
        raise ValueError("provider rejected bob@example.org")
    except ValueError:
        logger.exception("send failed")


def test_logs_reaching_the_prefect_api_are_masked(prefect_harness):
    state = chatty_flow(return_state=True)
    APILogHandler().flush()  # logs travel to the API in batches
    with get_client(sync_client=True) as client:
        run = LogFilterFlowRunId(any_=[state.state_details.flow_run_id])
        logs = client.read_logs(LogFilter(flow_run_id=run))
    text = "\n".join(log.message for log in logs)
    assert "sending to a***@e*** at +***23" in text
    assert "ValueError: provider rejected b***@e***" in text  # the traceback too
    for secret in ("ada@example.com", "bob@example.org", "555 0123"):
        assert secret not in text


def test_names_and_keys_follow_prefect_rules():
    key = artifact_key("Dispatch Due", "Campaign: Spring_Sale!", 42)
    assert key == "dispatch-due-campaign-spring-sale-42"
    assert artifact_key("***") == "run"
    assert run_name("campaign", "Spring Sale", at=utcnow().replace(2026, 1, 24, 9, 30, 0)) == (
        "campaign-spring-sale-20260124-093000"
    )


def test_the_summary_names_reasons_and_never_addresses():
    report = DispatchReport()
    report.add("sms", "sent", 3)
    report.add("sms", "failed", 2)
    report.failures += [
        Failure(1, 1, "sms", "outage", "failed", "permanent:invalid_address", "+1 415 555 0199"),
        Failure(2, 2, "sms", "outage", "failed", "permanent:invalid_address"),
    ]
    md = dispatch_markdown(report, title="Outage notice", reconciled=[7])
    assert "| sms | 3 | 0 | 2 | 0 | 0 |" in md
    assert "`permanent:invalid_address`: 2" in md
    assert "Needs reconciling (1)" in md and "0199" not in md


def test_prefect_yaml_deploys_every_flow_to_the_process_pool():
    from prefect.flows import Flow, load_flow_from_entrypoint

    from orchestrator.settings import REPO_ROOT

    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {"campaign", "outage-notice", "lifecycle-daily", "dispatch-due",
                                "report-daily"}
    assert {d["work_pool"]["name"] for d in deployments.values()} == {"orchestrator-pool"}
    assert deployments["dispatch-due"]["schedules"] == [{"interval": 60}]
    assert deployments["campaign"]["schedules"][0]["timezone"] == "America/New_York"
    # Deployments are addressed as "<flow name>/<deployment name>" (orchestrator serve runs
    # "outage-notice/outage-notice"), so these flows carry the deployment's name.
    flow_names = {"dispatch-due": "dispatch-due", "outage-notice": "outage-notice"}
    for name, deployment in deployments.items():
        path, _, function = deployment["entrypoint"].partition(":")
        if not (REPO_ROOT / path).exists():
            continue  # that flow has not landed yet
        loaded = load_flow_from_entrypoint(f"{REPO_ROOT / path}:{function}")
        assert isinstance(loaded, Flow)
        if name in flow_names:
            assert loaded.name == flow_names[name]


@pytest.mark.slow
def test_prefect_yaml_deploys_and_a_process_worker_runs_the_sweep(prefect_harness, sqlite_url):
    """The README's path: create the pool, `prefect deploy`, a worker runs the dispatch-due deployment."""
    import os
    import subprocess
    import sys

    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    from orchestrator.settings import REPO_ROOT

    (mid,) = add_messages(add_customers(1))
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="orchestrator-pool", type="process"))
        except ObjectAlreadyExists:
            pass
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    prefect_cli = [sys.executable, "-m", "prefect"]
    deployed = subprocess.run([*prefect_cli, "--no-prompt", "deploy", "--name", "dispatch-due"], env=env,
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]

    run = run_deployment("dispatch-due/dispatch-due", timeout=0)
    worker = subprocess.run([*prefect_cli, "worker", "start", "--pool", "orchestrator-pool", "--run-once"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-3000:]

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state.is_completed(), state.message
    assert messages([mid])[mid].status == MessageStatus.sent
    assert "ada0@example.com" not in worker.stdout + worker.stderr


@flow(name="one-chunk")
def one_chunk(limit: int | None = None, message_ids: list[int] | None = None) -> DispatchReport:
    from flows.common import dispatch_task

    quick = dispatch_task.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    return quick("chunk-1", limit=limit, message_ids=message_ids)


def test_the_dispatch_task_retries_database_hiccups_but_not_bugs(prefect_harness, monkeypatch):
    import flows.common

    calls = []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("UPDATE message ...", {}, Exception("server closed the connection"))
        return DispatchReport()

    monkeypatch.setattr(flows.common, "dispatch_due", flaky)
    assert one_chunk(message_ids=[1, 2, 3]).processed == 0
    assert len(calls) == 2 and calls[0]["limit"] == 3  # all the given ids, not a default chunk

    def buggy(**kwargs):
        calls.append(kwargs)
        raise ValueError("limit must be >= 0")

    calls.clear()
    monkeypatch.setattr(flows.common, "dispatch_due", buggy)
    with pytest.raises(ValueError, match="limit"):
        one_chunk(limit=-1)
    assert len(calls) == 1


def test_the_command_sends_what_is_due_and_says_when_the_rest_falls_due(prefect_harness, sqlite_url):
    cids = add_customers(3)
    due = add_messages(cids[:2], status=MessageStatus.deferred, send_at=utcnow() - timedelta(minutes=1))
    later_at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    later = add_messages(cids[2:], status=MessageStatus.deferred, send_at=later_at, dedupe="later")

    result = CliRunner().invoke(app, ["dispatch-due", "--json"])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert (answer["sent"], answer["waiting_later"]) == (2, 1)
    assert answer["next_due_at"] == later_at.isoformat()
    assert {m.status for m in messages(due).values()} == {MessageStatus.sent}
    assert {m.status for m in messages(later).values()} == {MessageStatus.deferred}
    text = " ".join(CliRunner().invoke(app, ["dispatch-due"]).stdout.split())
    assert "nothing was due" in text and f"the first falls due at {later_at:%Y-%m-%d %H:%M} UTC" in text
    typo = CliRunner().invoke(app, ["dispatch-due", "--channel", "fax"])
    assert typo.exit_code == 2
    assert "unknown channel 'fax' (installed channels: " in " ".join(typo.output.split())


def test_the_command_names_an_unconfigured_channel_and_fails(prefect_harness, sqlite_url, monkeypatch):
    from orchestrator.settings import get_settings

    monkeypatch.setenv("ORCH_CHANNEL_ADAPTERS", '{"email": "no-such-adapter"}')
    get_settings.cache_clear()
    ids = add_messages(add_customers(1))

    result = CliRunner().invoke(app, ["dispatch-due"])

    assert result.exit_code == 1 and "no-such-adapter" in result.stderr
    assert {m.status for m in messages(ids).values()} == {MessageStatus.deferred}
