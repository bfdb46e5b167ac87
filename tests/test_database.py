import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from orchestrator.db import get_engine, session_scope, upgrade
from orchestrator.models import Customer, Message


def test_migrations_create_every_table_from_empty(db_url):
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert {"customer", "message", "consent_event", "phone_task", "delivery_event", "rate_budget"} <= tables
    # Upgrading an up-to-date database is a no-op that reports the same revision: the one head.
    from alembic.script import ScriptDirectory

    from orchestrator.db import alembic_config

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
