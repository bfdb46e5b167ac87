"""A customer's personal data: ``customers export`` shows all of it; after ``customers erase`` none of
it is left, what we sent them and why stays (naming no one), nothing more reaches them, and a
re-import does not undo the opt-out."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import inspect
from sqlmodel import select
from typer.testing import CliRunner

from channels.channel_set import installed_channels
from orchestrator.audience.personal_data import WHERE_IT_LIVES
from orchestrator.cli import app
from orchestrator.consent import consent_allows, current_consent, record_consent, suppress_address
from orchestrator.customer_import.run import import_customers
from orchestrator.db import get_engine, session_scope
from orchestrator.models import (
    ContactPoint,
    ContactPreference,
    Customer,
    CustomerFeedback,
    DeliveryEvent,
    Message,
    MessageStatus,
    OutboxEntry,
    PhoneTask,
    Suppression,
    SuppressionEvent,
)
from orchestrator.phone_tasks import TaskRequest, open_tasks
from orchestrator.policy import Intent, load_policy, reserve_chunk
from orchestrator.settings import REPO_ROOT
from tests.support.ledger import add_customers, add_messages

POLICY = load_policy(REPO_ROOT / "policy.yaml")
ANNA = {"name": "Anna Kowalska", "email": "anna@example.com", "phone": "+48601234567"}


def erase(external_id: str, *extra: str, answer: str | None = None):
    return CliRunner().invoke(app, ["customers", "erase", external_id, *extra], input=answer)


def seed_anna() -> tuple[int, int, dict[str, int]]:
    """Anna with everything that can name her, and Ben beside her, untouched."""
    anna, ben = add_customers(2)
    with session_scope() as s:
        customer = s.get(Customer, anna)
        assert customer is not None
        customer.external_id, customer.name, customer.email, customer.phone = "anna", *ANNA.values()
        customer.x_handle, customer.attributes = "annak", {"city": "Kraków"}
        s.add(customer)
        s.add(ContactPoint(customer_id=anna, channel="whatsapp", address="whatsapp:+48601234567",
                           source="import"))
        record_consent(s, anna, "email", "*", "opted_in", "import")
        record_consent(s, anna, "*", "marketing", "opted_in", "import")
    [sent] = add_messages([anna], status=MessageStatus.sent, dedupe="sent", provider_message_id="pm-1",
                          data={"name": "Anna", "complaint": "late parcel"})
    [waiting] = add_messages([anna], status=MessageStatus.deferred, dedupe="waiting")
    [planned] = add_messages([anna], status=MessageStatus.planned, dedupe="planned")
    [bens] = add_messages([ben], status=MessageStatus.sent, dedupe="sent")
    with session_scope() as s:
        s.add(DeliveryEvent(message_id=sent, provider="sendgrid", provider_event_id="ev-1", event_type="open",
                            kind="opened", payload={"email": "anna@example.com"}))
        s.add(CustomerFeedback(customer_id=anna, channel="sms", body="My parcel is late again", score=2,
                               scale="csat", message_id=sent))
        s.add(OutboxEntry(message_id=sent, channel="email", address="anna@example.com", body="Hi Anna"))
        s.add(OutboxEntry(message_id=bens, channel="email", address="ada1@example.com", body="Hi Ben"))
        open_tasks(s, [TaskRequest(customer_id=anna, topic="support", reason="customer replied by SMS",
                                   script="Anna Kowalska, +48601234567: My parcel is late again")])
    return anna, ben, {"sent": sent, "waiting": waiting, "planned": planned, "bens": bens}


def test_erasure_removes_what_names_her_and_keeps_what_we_did(db_url):
    anna, ben, ids = seed_anna()

    result = erase("anna", "--yes", "--json")

    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert {k: v for k, v in counts.items() if k != "erased_at"} == {
        "external_id": "anna", "messages": 3, "cancelled": 2, "contact_points": 1, "feedback": 1,
        "phone_tasks": 1, "delivery_events": 1, "outbox_entries": 1}
    with session_scope() as s:
        customer = s.get(Customer, anna)
        assert customer is not None
        assert (customer.external_id, customer.name, customer.email, customer.phone, customer.x_handle,
                customer.attributes) == ("anna", "", None, None, None, {})
        assert s.exec(select(ContactPoint).where(ContactPoint.customer_id == anna)).all() == []
        rows = {m.id: m for m in s.exec(select(Message).where(Message.customer_id == anna))}
        assert rows[ids["sent"]].status == "sent" and rows[ids["sent"]].data == {}
        assert rows[ids["sent"]].provider_message_id == "pm-1"  # a late delivery report still finds it
        for key in ("waiting", "planned"):
            assert rows[ids[key]].status == "cancelled" and rows[ids[key]].reason_codes[-1] == "erased"
            assert rows[ids[key]].reason_text.endswith("Cancelled: the customer's personal data was erased.")
        [event] = s.exec(select(DeliveryEvent)).all()
        assert event.payload == {} and event.kind == "opened"  # still counted as an open
        [feedback] = s.exec(select(CustomerFeedback)).all()
        assert feedback.body == "" and feedback.score == 2
        [task] = s.exec(select(PhoneTask)).all()
        assert task.status == "cancelled" and task.script == "" and "erased" in (task.outcome or "")
        assert [e.message_id for e in s.exec(select(OutboxEntry))] == [ids["bens"]]
        assert s.get(ContactPreference, anna).do_not_contact is True  # type: ignore[union-attr]
        consent = current_consent(s, [anna])
        ben_row = s.get(Customer, ben)
        assert ben_row is not None and ben_row.email == "ada1@example.com"
    for channel in installed_channels():
        for topic in POLICY.topics:
            assert not consent_allows(consent, anna, channel, topic), (channel, topic)

    # Nothing more reaches her, not even a required notice: no address, opted out, do-not-contact.
    decided = reserve_chunk([Intent(customer_id=anna, topic="security", template="notice",
                                    dedupe_key="security-1")], policy=POLICY)
    assert decided.counts == {"suppressed": 1}

    again = erase("anna", "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["cancelled"] == 0
    shown = CliRunner().invoke(app, ["customers", "show", "anna", "--json"])
    assert json.loads(shown.stdout)["erased_at"] == json.loads(again.stdout)["erased_at"]  # the latest
    assert "Personal data erased on" in CliRunner().invoke(app, ["customers", "show", "anna"]).stdout


def export(external_id: str, tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / f"{external_id}.json"
    result = CliRunner().invoke(app, ["customers", "export", external_id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0  # readable by its owner only
    return json.loads(out.read_text(encoding="utf-8")), out.read_text(encoding="utf-8")


def test_the_export_holds_everything_about_her_and_after_erasure_nothing_that_names_her(db_url, tmp_path):
    seed_anna()
    with session_scope() as s:
        suppress_address(s, "email", ANNA["email"], "bounce", "webhook:sendgrid")
        suppress_address(s, "sms", ANNA["phone"], "manual", "operator", note="Anna Kowalska asked by phone")
    personal = [ANNA["email"], "Kowalska", ANNA["phone"][3:], "annak", "Kraków", "late again", "late parcel"]

    before, text = export("anna", tmp_path)

    assert {h.export for h in WHERE_IT_LIVES.values()} <= set(before)
    assert all(value in text for value in personal)
    assert before["profile"]["email"] == ANNA["email"] and len(before["messages"]) == 3
    assert before["contact_points"][0]["address"] == "whatsapp:+48601234567"
    assert [r["reason"] for r in before["suppressed_addresses"]] == ["bounce", "manual"]
    assert [e["note"] for e in before["suppression_history"]] == [None, "Anna Kowalska asked by phone"]
    assert "ada1@example.com" not in text  # nobody else's data

    assert erase("anna", "--yes").exit_code == 0
    after, text = export("anna", tmp_path)

    assert [value for value in personal if value in text] == []
    assert len(after["messages"]) == 3 and after["suppressed_addresses"] == []
    with session_scope() as s:  # her addresses stay suppressed, without the operator's words about her
        kept = s.exec(select(SuppressionEvent)).all()
        assert [(e.address, e.note) for e in kept] == [(ANNA["email"], None), (ANNA["phone"], None)]
        assert len(s.exec(select(Suppression)).all()) == 2
    assert CliRunner().invoke(app, ["customers", "export", "nobody"]).exit_code == 1


def test_a_reimport_restores_what_the_file_says_but_not_consent(db_url, tmp_path: Path):
    source = tmp_path / "crm.csv"
    source.write_text("external_id,name,email,email_opt_in,marketing_opt_in\n"
                      "anna,Anna Kowalska,anna@example.com,yes,yes\n", encoding="utf-8")
    import_customers(source)
    assert erase("anna", "--yes").exit_code == 0

    import_customers(source)  # the CRM still holds her: erase her there too

    with session_scope() as s:
        customer = s.exec(select(Customer).where(Customer.external_id == "anna")).one()
        consent = current_consent(s, [customer.id])  # type: ignore[list-item]
    assert customer.email == "anna@example.com"
    assert not consent_allows(consent, customer.id, "email", "marketing")  # type: ignore[arg-type]


def test_erase_asks_first_and_refuses_an_unknown_customer(db_url):
    seed_anna()

    declined = erase("anna", answer="n\n")
    assert declined.exit_code == 1 and "nothing was erased" in declined.output
    with session_scope() as s:
        assert s.exec(select(Customer).where(Customer.external_id == "anna")).one().email == ANNA["email"]
    unknown = erase("nobody", "--yes")
    assert unknown.exit_code == 1 and "no customer with external id 'nobody'" in unknown.output
    confirmed = erase("anna", answer="y\n")
    assert confirmed.exit_code == 0 and "Providers keep their own copies" in confirmed.stdout


def test_every_table_that_can_hold_a_customers_data_is_known_to_export_and_erasure(db_url):
    """A new table with a customer or message column must say what export and erasure do with it."""
    tables = inspect(get_engine()).get_table_names()
    holding = {t for t in tables
               if {"customer_id", "message_id"} & {c["name"] for c in inspect(get_engine()).get_columns(t)}}
    assert holding | {"customer"} == set(WHERE_IT_LIVES)
