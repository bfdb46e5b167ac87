"""Contact points: an address on any installed channel, imported with that channel's own rules,
shown masked, and moved out of customer attributes by the migration without loss."""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import insert, select, text
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.contact_points import addresses_of, customers_with_address, record_inbound
from orchestrator.customer_import import import_customers
from orchestrator.db import alembic_config, get_engine, session_scope, upgrade
from orchestrator.models import ContactPoint, Customer, utcnow
from tests.support import postgres
from tests.support.statements import reading, recorded_statements


def test_contact_columns_are_checked_by_their_channel_and_stored(sqlite_url, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,email,contact.whatsapp,contact.sms,country,whatsapp_opt_in\n"
        "w1,w1@example.com,+1 415 555 0101,,,yes\n"
        "w2,,whatsapp:+44 20 7946 0958,,,no\n"
        "w3,,0151 23456789,,DE,\n"
        "w4,,not a number,,,\n"
        "w5,,,+14155550105,,\n"
        "w6,w6@example.com,,,,\n",
        encoding="utf-8",
    )
    report = import_customers(path)
    assert (report.imported, [(r.line, r.field) for r in report.rejected]) == (5, [(5, "contact.whatsapp")])
    assert "+1" not in report.rejected[0].reason and "not a phone number" in report.rejected[0].reason
    with session_scope() as session:
        customers = list(session.scalars(select(Customer).order_by(Customer.external_id)))
        reach = addresses_of(session, customers)
        by_ext = {c.external_id: reach[c.id] for c in customers}
        points = list(session.scalars(select(ContactPoint)))
    assert by_ext["w1"]["whatsapp"] == "whatsapp:+14155550101"
    assert by_ext["w2"]["whatsapp"] == "whatsapp:+442079460958"
    assert by_ext["w3"]["whatsapp"] == "whatsapp:+4915123456789"  # read in the row's country
    assert {ch: a for ch, a in by_ext["w5"].items() if a} == {"sms": "+14155550105", "phone": "+14155550105"}
    # (contact.sms is the phone column)
    assert {(p.source, p.verified) for p in points} == {("import", False)}
    # Re-importing the same file changes nothing; a new address replaces the old one.
    import_customers(path)
    path.write_text("external_id,contact.whatsapp\nw1,+14155550199\n", encoding="utf-8")
    import_customers(path)
    with session_scope() as session:
        query = select(ContactPoint.address).where(ContactPoint.customer_id == customers[0].id)
        assert session.scalar(query) == "whatsapp:+14155550199"
        assert len(list(session.scalars(select(ContactPoint)))) == 3


def test_an_unknown_contact_channel_is_reported_not_guessed(sqlite_url, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,contact.pigeon\np1,coop 4\n", encoding="utf-8")
    report = import_customers(path)
    assert report.imported == 1 and "no installed channel 'pigeon'" in report.warnings[0]


def test_the_inbound_message_verifies_the_address_and_opens_the_window(db_url):
    with session_scope() as session:
        customer = Customer(external_id="c1")
        session.add(customer)
        session.flush()
        session.add(ContactPoint(customer_id=customer.id, channel="whatsapp", address="whatsapp:+14155550101",
                                 source="import"))
    at = utcnow()
    with session_scope() as session:
        assert record_inbound(session, "whatsapp", "whatsapp:+14155550101", at) == [customer.id]
        assert record_inbound(session, "whatsapp", "whatsapp:+14155550999", at) == []
    with session_scope() as session:
        point = session.scalars(select(ContactPoint)).one()
        assert point.verified and point.last_inbound_at.replace(microsecond=0) == at.replace(microsecond=0)
        assert customers_with_address(session, "whatsapp", "whatsapp:+14155550101") == [customer.id]


def test_customers_show_lists_every_address_masked_unless_revealed(sqlite_url, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("external_id,email,contact.whatsapp\nw1,ada@example.com,+14155550101\n", encoding="utf-8")
    import_customers(path)
    runner = CliRunner()
    shown = json.loads(runner.invoke(app, ["customers", "show", "w1", "--json"]).stdout)
    assert {"channel": "whatsapp", "address": "whatsapp:+***01", "verified": False, "source": "import",
            "suppressed": None} \
        in shown["contact_points"]
    assert {"channel": "email", "address": "a***@e***", "verified": None, "source": "profile",
            "suppressed": None} \
        in shown["contact_points"]
    revealed = json.loads(runner.invoke(app, ["customers", "show", "w1", "--json", "--reveal"]).stdout)
    assert {p["address"] for p in revealed["contact_points"]} == {"ada@example.com", "whatsapp:+14155550101"}
    table = runner.invoke(app, ["customers", "show", "w1"])
    assert table.exit_code == 0 and "+14155550101" not in table.stdout and "whatsapp:+***01" in table.stdout



def test_customers_list_shows_every_channels_address_masked_reading_contact_points_once(
    sqlite_url, tmp_path, monkeypatch
):
    """Built-in addresses (customer columns) and plug-in ones (contact points: WhatsApp in this
    repository, the out-of-tree webhook channel) side by side, masked as everywhere else; the
    page's contact points are one query, however many customers have some."""
    from orchestrator.cli.output import console
    from orchestrator.privacy import mask_address

    monkeypatch.setattr(console, "width", 200)  # no cell folded, whatever width an earlier test left
    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,email,phone,x_user_id,contact.whatsapp,contact.webhook\n"
        "l1,ada@example.com,+14155550101,1234,+14155550101,https://hooks.example.net/ada\n"
        "l2,,,,+14155550102,\n"
        "l3,,,,,https://hooks.example.org/cy\n"
        "l4,,,,,\n",
        encoding="utf-8",
    )
    assert import_customers(path).imported == 4
    stored = {
        "l1": {"email": "ada@example.com", "sms": "+14155550101", "social": "1234", "phone": "+14155550101",
               "webhook": "https://hooks.example.net/ada", "whatsapp": "whatsapp:+14155550101"},
        "l2": {"whatsapp": "whatsapp:+14155550102"},
        "l3": {"webhook": "https://hooks.example.org/cy"},
        "l4": {},
    }
    runner = CliRunner()
    with recorded_statements() as statements:
        listed = json.loads(runner.invoke(app, ["customers", "list", "--json"]).stdout)
    addresses = {c["external_id"]: c["addresses"] for c in listed["customers"]}
    assert addresses == {ext: {ch: mask_address(ch, a) for ch, a in on_file.items()}
                         for ext, on_file in stored.items()}
    assert list(addresses["l1"]) == ["email", "sms", "social", "phone", "webhook", "whatsapp"]
    assert len(reading("contact_point", statements)) == 1

    with recorded_statements() as statements:
        table = runner.invoke(app, ["customers", "list"])
    assert table.exit_code == 0, table.output
    assert len(reading("contact_point", statements)) == 1
    assert "whatsapp: whatsapp:+***01" in table.stdout
    assert "webhook: https://hooks.example.org/***" in table.stdout
    hidden = [a for on_file in stored.values() for ch, a in on_file.items() if mask_address(ch, a) != a]
    assert hidden and not any(address in table.stdout for address in hidden)  # (X user ids are public)


# --- the migration, from a database made by the previous schema ----------------------------------

PREVIOUS = "0004_delivery_event_kind"  # the schema before contact points


def _migrate_from_previous_schema(url: str) -> None:
    command.upgrade(alembic_config(url), PREVIOUS)
    now = utcnow()
    rows = [
        {"external_id": "legacy-1", "name": "Ada", "email": "ada@example.com", "phone": "+14155550101",
         "x_user_id": "1234", "attributes": {"whatsapp_address": "whatsapp:+14155550101", "plan": "pro"}},
        {"external_id": "legacy-2", "name": "Bo", "email": None, "phone": "+14155550102", "x_user_id": None,
         "attributes": {"whatsapp_address": "+14155550102", "pager_address": "kept as it was"}},
        {"external_id": "legacy-3", "name": "Cy", "email": "cy@example.com", "phone": None, "x_user_id": None,
         "attributes": {}},
    ]
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(Customer.__table__), [
            {**row, "timezone": "UTC", "locale": "en", "tier": "standard", "created_at": now,
             "updated_at": now} for row in rows
        ])
        assert "contact_point" not in {r[0] for r in conn.execute(text(
            "SELECT name FROM sqlite_master" if url.startswith("sqlite") else
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
    upgrade(url)
    with session_scope(url) as session:
        customers = {c.external_id: c for c in session.scalars(select(Customer))}
        reach = addresses_of(session, customers.values())
        points = list(session.scalars(select(ContactPoint)))
    ada, bo, cy = ({ch: a for ch, a in reach[customers[k].id].items() if a}
                   for k in ("legacy-1", "legacy-2", "legacy-3"))
    assert ada == {"email": "ada@example.com", "sms": "+14155550101", "social": "1234",
                   "phone": "+14155550101", "whatsapp": "whatsapp:+14155550101"}
    assert bo["whatsapp"] == "+14155550102" and bo["sms"] == "+14155550102"  # moved as it was, not lost
    assert cy == {"email": "cy@example.com"}
    assert {(p.channel, p.source) for p in points} == {("whatsapp", "migration")}
    assert customers["legacy-1"].attributes == {"plan": "pro"}
    assert customers["legacy-2"].attributes == {"pager_address": "kept as it was"}  # no such channel
    # And back: the downgrade returns the addresses to the attributes.
    command.downgrade(alembic_config(url), PREVIOUS)
    with get_engine(url).connect() as conn:
        c = Customer.__table__.c
        attributes = {k: v for k, v in conn.execute(select(c.external_id, c.attributes))}
    attributes = {k: json.loads(v) if isinstance(v, str) else v for k, v in attributes.items()}
    assert attributes["legacy-1"] == {"plan": "pro", "whatsapp_address": "whatsapp:+14155550101"}


def test_the_migration_moves_plug_in_addresses_without_loss_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'previous.db'}"
    _migrate_from_previous_schema(url)
    get_engine(url).dispose()


@pytest.mark.postgres
def test_the_migration_moves_plug_in_addresses_without_loss_on_postgresql():
    server, reason = postgres.ensure_server()
    if server is None:
        pytest.skip(f"no PostgreSQL: {reason}")
    url = postgres.create_database(server)
    try:
        _migrate_from_previous_schema(url)
    finally:
        get_engine(url).dispose()
        postgres.drop_database(server, url)


def test_built_in_addresses_are_imported_shown_and_masked_as_contact_points(sqlite_url, tmp_path):
    """Email, SMS and X addresses live on the customer row (see ARCHITECTURE.md), but to the user
    they are contact points like any other: ``contact.<channel>`` columns, one list, one masking."""
    from orchestrator.privacy import mask_address

    path = tmp_path / "customers.csv"
    path.write_text(
        "external_id,email,contact.email,contact.sms,contact.social,contact.whatsapp\n"
        "u1,,ada@Example.COM,+1 415 555 0101,1234,+14155550101\n"
        "u2,bo@example.com,other@example.com,,,\n",
        encoding="utf-8",
    )
    report = import_customers(path)
    assert report.imported == 1
    assert [(r.line, r.field) for r in report.rejected] == [(3, "contact.email")]
    assert "differs from the email column" in report.rejected[0].reason
    with session_scope() as session:
        customer = session.scalars(select(Customer)).one()
    assert (customer.email, customer.phone, customer.x_user_id) == ("ada@example.com", "+14155550101", "1234")

    shown = json.loads(CliRunner().invoke(app, ["customers", "show", "u1", "--json"]).stdout)
    listed = {p["channel"]: p for p in shown["contact_points"]}
    assert set(listed) == {"email", "sms", "phone", "social", "whatsapp"}
    assert {listed[ch]["source"] for ch in ("email", "sms", "phone", "social")} == {"profile"}
    assert listed["whatsapp"]["source"] == "import"
    stored = {"email": "ada@example.com", "sms": "+14155550101", "phone": "+14155550101", "social": "1234",
              "whatsapp": "whatsapp:+14155550101"}
    for channel, address in stored.items():  # the masking logs use, for every channel
        assert listed[channel]["address"] == mask_address(channel, address)
    assert "+14155550101" not in json.dumps(shown) and "ada@example.com" not in json.dumps(shown)
    assert shown["profile"]["email"] == listed["email"]["address"]
    assert shown["profile"]["phone"] == listed["sms"]["address"]
