import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from orchestrator.db import alembic_config, get_engine, session_scope, upgrade
from orchestrator.models import Customer, Message


def test_migrations_create_every_table_from_empty(db_url):
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert {"customer", "message", "consent_event", "phone_task", "delivery_event", "rate_budget"} <= tables
    # Upgrading an up-to-date database is a no-op that reports the same revision: the one head.
    [head] = ScriptDirectory.from_config(alembic_config(db_url)).get_heads()
    assert upgrade(db_url) == head


def test_ledger_unique_key_refuses_a_second_row_for_the_same_dedupe_key(db_url):
    with session_scope(db_url) as s:
        c = Customer(external_id="c1", name="Ada")
        s.add(c)
        s.flush()
        s.add(Message(dedupe_key="k", customer_id=c.id, topic="marketing", channel="email",
                      template="t", status="planned"))
    with pytest.raises(IntegrityError):
        with session_scope(db_url) as s:
            s.add(Message(dedupe_key="k", customer_id=c.id, topic="marketing", channel="email",
                          template="t", status="planned"))


def test_events_stored_before_event_kinds_get_their_kind_from_the_provider_word(tmp_path):
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0003_rate_budget")
    rows = [("sendgrid", "e1", "open", '{"event": "open", "sg_machine_open": true}'),
            ("sendgrid", "e2", "open", '{"event": "open", "sg_machine_open": false}'),
            ("sendgrid", "e3", "bounce", '{"event": "bounce", "type": "blocked"}'),
            ("sendgrid", "e4", "bounce", '{"event": "bounce", "type": "bounce"}'),
            ("sendgrid", "e5", "spamreport", "{}"), ("sendgrid", "e6", "group_unsubscribe", "{}"),
            ("sendgrid", "e7", "processed", "{}"), ("twilio", "SM1:undelivered", "undelivered", "{}"),
            ("twilio", "SM2:inbound", "inbound_feedback", "{}"), ("twilio", "SM3:read", "read", "{}")]
    with get_engine(url).begin() as conn:
        for provider, event_id, event_type, payload in rows:
            conn.execute(text("INSERT INTO delivery_event (provider, provider_event_id, event_type, payload, "
                              "received_at) VALUES (:p, :e, :t, :j, '2026-01-01 00:00:00')"),
                         {"p": provider, "e": event_id, "t": event_type, "j": payload})
    upgrade(url)
    with get_engine(url).connect() as conn:
        kinds = dict(conn.execute(text("SELECT provider_event_id, kind FROM delivery_event")).all())
    assert kinds == {"e1": "machine_open", "e2": "open", "e3": "blocked", "e4": "bounce", "e5": "spam_report",
                     "e6": "unsubscribe", "e7": "sent", "SM1:undelivered": "failed", "SM2:inbound": "inbound",
                     "SM3:read": "delivered"}
