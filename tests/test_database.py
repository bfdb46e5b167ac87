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


def test_the_migrations_make_the_schema_the_models_declare(db_url):
    """Tables, columns and indexes: a model changed without its migration shows up here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with get_engine(db_url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


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


def test_a_read_only_session_reads_the_last_commit_while_a_writer_holds_sqlites_lock(sqlite_url):
    """``read_scope`` begins DEFERRED on SQLite: it neither waits for the one writer (every other
    transaction begins IMMEDIATE) nor may it write; the pooled connection writes again afterwards."""
    import threading

    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError

    from orchestrator.db import read_scope

    with session_scope(sqlite_url) as s:
        s.add(Customer(external_id="c1", name="Ada"))
    names: list[str] = []
    writing, read_done = threading.Event(), threading.Event()

    def writer() -> None:
        with session_scope(sqlite_url) as s:
            s.add(Customer(external_id="c2", name="Bo"))
            s.flush()  # BEGIN IMMEDIATE: the write lock is held until the commit
            writing.set()
            read_done.wait(20)

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(10)
    reader = threading.Thread(target=lambda: names.extend(_names(read_scope, sqlite_url, select)))
    reader.start()
    reader.join(5)
    finished_while_locked = not reader.is_alive()
    read_done.set()
    reader.join(30)
    thread.join(30)
    assert finished_while_locked and names == ["Ada"]  # the last commit, not the writer's row

    with pytest.raises(OperationalError, match="readonly"):
        with read_scope(sqlite_url) as s:
            s.add(Customer(external_id="c3", name="Cy"))
            s.flush()
    with session_scope(sqlite_url) as s:  # the same pooled connections write as before
        s.add(Customer(external_id="c4", name="Di"))
    assert _names(read_scope, sqlite_url, select) == ["Ada", "Bo", "Di"]


def _names(scope, url, select) -> list[str]:
    with scope(url) as s:
        return list(s.scalars(select(Customer.name).order_by(Customer.id)))


def test_a_read_only_session_reads_on_postgresql_too(pg_url):
    from sqlalchemy import select

    from orchestrator.db import read_scope

    with session_scope(pg_url) as s:
        s.add(Customer(external_id="c1", name="Ada"))
    assert _names(read_scope, pg_url, select) == ["Ada"]


def _raised_while_handling(lost: BaseException, then: BaseException) -> BaseException:
    try:
        try:
            raise lost
        finally:
            raise then  # as the driver's cleanup does when the connection has just gone
    except BaseException as exc:
        return exc


def test_an_error_raised_while_the_connection_was_being_lost_is_a_blip_to_wait_out():
    """psycopg: the pool's ping fails on a connection whose session the server killed, and
    restoring its autocommit raises a ProgrammingError that hides the lost connection."""
    import sqlite3

    import psycopg
    from sqlalchemy.exc import ProgrammingError

    from orchestrator.db import is_unavailable

    autocommit = psycopg.ProgrammingError("can't change 'autocommit' now: connection in transaction "
                                          "status ACTIVE")
    hiding = _raised_while_handling(psycopg.OperationalError("connection socket closed"), autocommit)
    assert is_unavailable(ProgrammingError(";", None, hiding))
    assert is_unavailable(ProgrammingError(";", None, _raised_while_handling(
        psycopg.errors.AdminShutdown("terminating connection"), psycopg.ProgrammingError("x"))))
    # what is not about the connection stays an error at once
    assert not is_unavailable(ProgrammingError(";", None, psycopg.ProgrammingError("syntax error")))
    assert not is_unavailable(ProgrammingError(";", None, _raised_while_handling(
        sqlite3.OperationalError("no such table: message"), sqlite3.ProgrammingError("x"))))
    assert is_unavailable(ProgrammingError(";", None, _raised_while_handling(
        sqlite3.OperationalError("database is locked"), sqlite3.ProgrammingError("x"))))


def test_addresses_suppressed_before_the_history_start_it(tmp_path):
    from alembic import command
    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0005_contact_points")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO suppression (channel, address, reason, source, created_at) VALUES "
                          "('email', 'gone@example.com', 'bounce', 'webhook:sendgrid', '2026-01-02 03:04:05')"
                          ))
    upgrade(url)
    with get_engine(url).connect() as conn:
        events = conn.execute(text("SELECT channel, address, action, reason, source, note, created_at "
                                   "FROM suppression_event")).all()
    assert [tuple(e) for e in events] == [
        ("email", "gone@example.com", "added", "bounce", "webhook:sendgrid", None, "2026-01-02 03:04:05")]
