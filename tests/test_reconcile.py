"""Operators settle messages a crash left unsure: the ledger records what the provider said."""

import json

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.dispatch.run import dispatch_due
from orchestrator.models import MessageStatus
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter

runner = CliRunner()


def test_flagged_messages_are_listed_and_settled_once(db_url, tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)
    customers = add_customers(3)
    had_it, never_had_it, untouched = add_messages(
        customers, status=MessageStatus.reconcile, last_error="reconcile:lease_expired"
    )
    already_sent = add_messages(customers[:1], status=MessageStatus.sent, dedupe="other")[0]

    listed = runner.invoke(app, ["reconcile", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [m["id"] for m in json.loads(listed.output)] == [had_it, never_had_it, untouched]

    result = runner.invoke(app, ["reconcile", "settle", str(had_it), str(already_sent), "--sent",
                                 "--provider-id", "SG-123", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"sent": 1, "requeued": 0, "not_flagged": 1}
    result = runner.invoke(app, ["reconcile", "settle", str(never_had_it), "--not-sent"])
    assert result.exit_code == 0 and "1 queued to go out again" in result.output

    rows = messages()
    assert (rows[had_it].status, rows[had_it].provider_message_id) == ("sent", "SG-123")
    assert rows[never_had_it].status == "deferred"
    assert rows[untouched].status == "reconcile"
    assert rows[already_sent].status == "sent" and rows[already_sent].provider_message_id is None

    # Only the message the provider never received goes out again, once.
    adapter = RecordingAdapter("email")
    dispatch_due(adapters={"email": adapter})
    dispatch_due(adapters={"email": adapter})
    assert [m.message_id for m in adapter.sent] == [never_had_it]


def test_a_provider_id_without_sent_is_refused(sqlite_url):
    result = runner.invoke(app, ["reconcile", "settle", "1", "--not-sent", "--provider-id", "X"])
    assert result.exit_code == 2
