"""``orchestrator suppressions``: the list, an address's history, adding one by hand and lifting one,
never against the customer's own word."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.consent import suppress_address
from orchestrator.db import session_scope
from orchestrator.models import Customer, Suppression, SuppressionEvent
from orchestrator.policy import Intent, load_policy, reserve_chunk
from orchestrator.settings import REPO_ROOT
from tests.support.ledger import add_customers

POLICY = load_policy(REPO_ROOT / "policy.yaml")
NOON = datetime(2026, 5, 6, 12, 0, tzinfo=UTC)


def run(*args: str):
    return CliRunner().invoke(app, ["suppressions", *args])


def receipt(customer_id: int, key: str) -> Intent:
    return Intent(customer_id=customer_id, topic="transactional", template="receipt", dedupe_key=key)


def listed() -> set[tuple[str, str, str]]:
    with session_scope() as s:
        return {(r.channel, r.address, r.reason) for r in s.exec(select(Suppression))}


def history(address: str) -> list[tuple[str, str, str, str | None]]:
    with session_scope() as s:
        rows = s.exec(select(SuppressionEvent).where(SuppressionEvent.address == address)
                      .order_by(SuppressionEvent.id))
        return [(e.action, e.reason, e.source, e.note) for e in rows]


def test_a_bounced_address_is_shown_with_why_and_lifted_with_a_note_then_reached_again(db_url, monkeypatch):
    from orchestrator.cli.output import console

    monkeypatch.setattr(console, "_width", 200)
    (ada,) = add_customers(1)
    with session_scope() as s:
        suppress_address(s, "email", "ada0@example.com", "bounce", "webhook:sendgrid")
        suppress_address(s, "sms", "+14155550199", "unknown_number", "webhook:twilio")

    table = run("list")
    assert table.exit_code == 0, table.output
    assert "ada0@example.com" not in table.stdout and "a***@e***" in table.stdout  # masked
    assert "hard bounce" in table.stdout and "Newest 2 of 2" in table.stdout
    listing = json.loads(run("list", "--channel", "email", "--reveal", "--json").stdout)
    assert listing["total"] == 1 and listing["addresses"][0]["address"] == "ada0@example.com"
    assert {(p["channel"], p["reason"], p["addresses"]) for p in listing["per_reason"]} == {
        ("email", "bounce", 1), ("sms", "unknown_number", 1)}
    shown = json.loads(run("show", "email", "ada0@example.com", "--json").stdout)
    assert shown["suppressed"]["reason"] == "bounce" and shown["address"] == "a***@e***"
    assert [c[:3] for c in shown["customers"]] == ["c0-"]  # whom it reaches
    decided = reserve_chunk([receipt(ada, "r1")], now=NOON, policy=POLICY)
    assert decided.rows[0].channel == "sms"  # the bounced address is not used

    lifted = run("lift", "email", " Ada0@Example.com ", "--note", "mailbox fixed, ticket 77")  # as typed
    assert lifted.exit_code == 0, lifted.output
    assert "Lifted email a***@e***" in lifted.stdout and "SendGrid keeps its own" in lifted.stdout
    assert listed() == {("sms", "+14155550199", "unknown_number")}
    assert history("ada0@example.com") == [("added", "bounce", "webhook:sendgrid", None),
                                           ("lifted", "bounce", "operator", "mailbox fixed, ticket 77")]
    again = reserve_chunk([receipt(ada, "r2")], now=NOON, policy=POLICY)
    assert (again.rows[0].channel, again.rows[0].status) == ("email", "planned")
    assert run("lift", "email", "ada0@example.com", "--note", "again").exit_code == 1  # no longer on the list
    words = " ".join(run("show", "email", "ada0@example.com").stdout.split())
    assert "is not suppressed" in words and "mailbox fixed, ticket 77" in words


def test_stop_stays_until_the_customer_says_start_and_a_spam_report_needs_the_customer(db_url):
    with session_scope() as s:
        suppress_address(s, "sms", "+14155550100", "unsubscribed", "sms_keyword")
        suppress_address(s, "email", "grumpy@example.com", "spamreport", "webhook:sendgrid")

    stop = run("lift", "sms", "+1 415 555 0100", "--note", "customer called")
    assert stop.exit_code == 1 and "only their START lifts it" in stop.output
    spam = run("lift", "email", "grumpy@example.com", "--note", "sales asked")
    assert spam.exit_code == 1 and "--customer-asked" in spam.output
    assert listed() == {("sms", "+14155550100", "unsubscribed"),
                        ("email", "grumpy@example.com", "spamreport")}
    assert [e[0] for e in history("grumpy@example.com")] == ["added"]  # a refusal leaves no trace

    asked = run("lift", "email", "grumpy@example.com", "--customer-asked", "--note", "asked to rejoin")
    assert asked.exit_code == 0, asked.output
    assert listed() == {("sms", "+14155550100", "unsubscribed")}


def test_an_operator_suppresses_an_address_by_hand_with_a_reason(db_url):
    add = run("add", "email", "legal@example.com", "--note", "legal hold")
    assert add.exit_code == 0 and "no message goes to it" in add.stdout
    assert "legal@example.com" not in add.stdout
    again = run("add", "email", "legal@example.com", "--note", "twice")
    assert again.exit_code == 0 and "already suppressed" in again.stdout
    assert listed() == {("email", "legal@example.com", "manual")}
    assert history("legal@example.com") == [("added", "manual", "operator", "legal hold")]  # one event

    assert run("add", "email", "not-an-address", "--note", "x").exit_code == 2
    assert run("add", "email", "x@example.com", "--note", "  ").exit_code == 2
    assert run("add", "email", "x@example.com").exit_code == 2  # --note is required
    typo = run("add", "fax", "x@example.com", "--note", "x")
    assert typo.exit_code == 2 and "unknown channel 'fax'" in typo.output
    assert listed() == {("email", "legal@example.com", "manual")}  # nothing else was written
    assert "No address is suppressed for that filter." in run("list", "--channel", "sms").stdout


def test_customers_show_says_which_address_is_suppressed(db_url):
    (ada,) = add_customers(1)
    with session_scope() as s:
        suppress_address(s, "email", "ada0@example.com", "bounce", "webhook:sendgrid")
        external_id = s.get(Customer, ada).external_id
    shown = json.loads(CliRunner().invoke(app, ["customers", "show", external_id, "--json"]).stdout)
    by_channel = {p["channel"]: p["suppressed"] for p in shown["contact_points"]}
    assert by_channel["email"]["reason"] == "bounce" and by_channel["sms"] is None


def test_a_list_from_another_provider_is_imported_line_by_line(db_url, tmp_path):
    export = tmp_path / "bounces.csv"
    lines = ["email,created,reason,status",
             "Gone@Example.com,1700000000,550 5.1.1 mailbox unknown,bounced",
             "not-an-email,1700000000,x,bounced",
             ",1700000000,x,bounced",
             'legal@example.com,1,"quoted, with a comma",bounced']
    export.write_bytes(("\n".join(lines) + "\n").encode() + b"bad\xff@example.com,1,x,bounced\n")
    with session_scope() as s:
        suppress_address(s, "email", "legal@example.com", "manual", "operator", note="legal hold")

    result = run("import", str(export), "--channel", "email", "--reason", "bounce", "--json")

    assert result.exit_code == 1  # some lines were rejected: said, and the rest imported
    done = json.loads(result.stdout)
    assert (done["read"], done["added"], done["already"]) == (5, 1, 1)
    assert [(r["line"], r["reason"][:20]) for r in done["rejected"]] == [
        (3, "not a valid email ad"), (4, "no address"), (6, "not valid UTF-8")]
    assert "not-an-email" not in result.stdout  # the reasons never repeat an address
    assert listed() == {("email", "Gone@example.com", "bounce"), ("email", "legal@example.com", "manual")}
    assert history("Gone@example.com") == [("added", "bounce", "import", "550 5.1.1 mailbox unknown")]
    again = run("import", str(export), "--channel", "email", "--reason", "bounce", "--json")
    assert (json.loads(again.stdout)["added"], json.loads(again.stdout)["already"]) == (0, 2)  # idempotent

    texts = tmp_path / "stops.csv"
    texts.write_text("address,channel\n+1 415 555 0100,sms\n+14155550101,fax\n", encoding="utf-8")
    stops = run("import", str(texts), "--reason", "unsubscribed")
    assert stops.exit_code == 1 and "line 3: unknown channel 'fax'" in stops.stdout
    assert ("sms", "+14155550100", "unsubscribed") in listed()
    assert run("lift", "sms", "+14155550100", "--note", "x").exit_code == 1  # an imported STOP stays one

    for bad, why in ((["--reason", "nope"], "unknown reason 'nope'"), ([], "no channel column")):
        refused = run("import", str(export), *bad)
        assert refused.exit_code == 2 and why in refused.output
    missing = run("import", str(tmp_path / "none.csv"), "--channel", "email")
    assert missing.exit_code == 2 and "cannot read" in missing.output
    (tmp_path / "names.csv").write_text("name\nAda\n", encoding="utf-8")
    no_column = run("import", str(tmp_path / "names.csv"), "--channel", "email")
    assert no_column.exit_code == 2 and "no address column" in no_column.output
