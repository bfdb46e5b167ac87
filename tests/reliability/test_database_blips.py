"""A database blip in the middle of a dispatch: nothing a provider accepted is lost.

A blip is real: on SQLite another connection holds the write lock past the busy timeout (shortened
to 0.2 s here); on PostgreSQL the database refuses connections and its sessions are killed, as in
a restart. Each blip ends when the test says so (after a given number of failed attempts, seen
in the log), so the outcome does not depend on timing.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from orchestrator import db
from orchestrator.db import DatabaseUnavailable, get_engine
from orchestrator.dispatch.run import dispatch_due
from orchestrator.local_channels.outbox import OutboxAdapter
from orchestrator.models import MessageStatus, utcnow
from tests.support import postgres
from tests.support.ledger import add_customers, add_messages, messages, use_mini_templates
from tests.support.recording_adapter import RecordingAdapter

MESSAGES = 20
BATCH = 5


@pytest.fixture(autouse=True)
def _templates(tmp_path, monkeypatch):
    use_mini_templates(tmp_path / "templates", monkeypatch)


class Blip:
    """Makes the test's database unavailable until ``end()``; ``end_after(n)`` ends it once the
    dispatcher has logged ``n`` failed attempts to reach it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.active = False
        self.failures = 0
        self.end_at: int | None = None
        self._lock: sqlite3.Connection | None = None

    def start(self) -> None:
        if self.active:
            return
        self.active = True
        if db.is_sqlite(get_engine(self.url)):
            self._lock = sqlite3.connect(make_url(self.url).database, check_same_thread=False,
                                         isolation_level=None)
            self._lock.execute("BEGIN IMMEDIATE")  # the write lock, held past the busy timeout
            return
        name = make_url(self.url).database
        with postgres.admin_engine(postgres.server_url()).connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})

    def end(self) -> None:
        if not self.active:
            return
        self.active = False
        if self._lock is not None:
            self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None
            return
        name = make_url(self.url).database
        with postgres.admin_engine(postgres.server_url()).connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))

    def end_after(self, failures: int) -> None:
        self.end_at = failures

    def saw_failure(self) -> None:
        self.failures += 1
        if self.end_at is not None and self.failures >= self.end_at:
            self.end()


class _Watcher(logging.Handler):
    def __init__(self, blip: Blip) -> None:
        super().__init__(logging.WARNING)
        self.blip = blip

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("database unavailable while recording") or \
                record.getMessage().startswith("not recorded:"):
            self.blip.saw_failure()


@pytest.fixture
def blip(db_url, monkeypatch) -> Iterator[Blip]:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(db, "BLIP_RETRY_DELAYS", (0.1,) * 4)
    get_engine(db_url).dispose()  # new connections take the short busy timeout
    blip = Blip(db_url)
    watcher = _Watcher(blip)
    logging.getLogger("orchestrator").addHandler(watcher)
    try:
        yield blip
    finally:
        logging.getLogger("orchestrator").removeHandler(watcher)
        blip.end()


def _blip_on_first_send(blip: Blip) -> Callable:
    def answer(_message):
        blip.start()  # the provider has the message; the database goes away before it is recorded
        return None

    return answer


def test_a_blip_while_recording_is_waited_out_and_every_accepted_message_is_recorded(blip, figure):
    ids = add_messages(add_customers(MESSAGES))
    adapter = RecordingAdapter("email", max_batch=BATCH, answer=_blip_on_first_send(blip))
    blip.end_after(2)  # two failed attempts to record, then the database is back

    report = dispatch_due(adapters={"email": adapter})

    rows = messages(ids)
    assert {r.status for r in rows.values()} == {MessageStatus.sent}
    assert all(r.provider_message_id == f"rec-{r.id}" for r in rows.values())
    assert sorted(m.message_id for m in adapter.sent) == sorted(ids)  # each sent once
    assert report.total("sent") == MESSAGES and not report.reconcile
    figure("database blips", f"a database blip while recording (SQLite locked past its busy timeout; "
           f"PostgreSQL refusing connections with its sessions killed) lasting 2 failed attempts: "
           f"{MESSAGES} of {MESSAGES} accepted messages recorded as sent with their provider ids, "
           "0 flagged for reconciliation, 0 sent twice")


class _BlippingOutbox(OutboxAdapter):
    """The local outbox, whose own database write meets the blip."""

    def __init__(self, blip: Blip, tmp_path) -> None:
        super().__init__("email", outbox_dir=tmp_path / "outbox")
        self.blip = blip

    def send(self, batch):
        self.blip.start()
        return super().send(batch)


def test_an_outbox_write_that_rolled_back_is_tried_again_not_flagged(blip, tmp_path):
    ids = add_messages(add_customers(MESSAGES))
    outbox = _BlippingOutbox(blip, tmp_path)
    blip.end_after(1)

    dispatch_due(adapters={"email": outbox})

    rows = messages(ids)
    assert {r.status for r in rows.values()} == {MessageStatus.deferred}  # not reconcile: nothing went out
    assert all("outbox database unavailable" in (r.last_error or "") for r in rows.values())
    assert outbox.entries() == []
    later = utcnow() + timedelta(minutes=5)
    dispatch_due(now=later, adapters={"email": OutboxAdapter("email", outbox_dir=tmp_path / "outbox")})
    assert {r.status for r in messages(ids).values()} == {MessageStatus.sent}
    assert sorted(e.message_id for e in outbox.entries()) == sorted(ids)  # each exactly once


def test_a_database_that_stays_away_fails_the_run_in_one_line_and_leaves_nothing_claimed(blip, caplog):
    ids = add_messages(add_customers(MESSAGES))
    adapter = RecordingAdapter("email", max_batch=BATCH, answer=_blip_on_first_send(blip))
    blip.end_after(6)  # the record step gives up (5 attempts); the database is back for the clean-up

    with pytest.raises(DatabaseUnavailable) as raised:
        dispatch_due(adapters={"email": adapter})

    message = str(raised.value)
    assert "\n" not in message and message.startswith("the database was unavailable while recording 5 ")
    assert "UPDATE" not in message and "parameters" not in message
    accepted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("not recorded:")]
    assert accepted and all(f"{i}=rec-{i}" in accepted[0] for i in ids[:BATCH])
    rows = messages(ids)
    # The provider ids were kept until the database came back; the rest went back to the queue.
    assert [rows[i].status for i in ids[:BATCH]] == [MessageStatus.sent] * BATCH
    assert all(rows[i].provider_message_id == f"rec-{i}" for i in ids[:BATCH])
    rest = [rows[i] for i in ids[BATCH:]]
    assert {r.status for r in rest} == {MessageStatus.deferred} and {r.attempts for r in rest} == {0}
    assert len(adapter.sent) == BATCH


def test_the_command_line_says_so_in_one_line(blip, capsys):
    from typer import Exit

    from orchestrator.cli.flow_runs import run_flow

    add_messages(add_customers(3))
    blip.start()  # and it never comes back during the run

    with pytest.raises(Exit) as exited:
        run_flow(lambda: dispatch_due(adapters={"email": RecordingAdapter("email")}))

    assert exited.value.exit_code == 1
    err = " ".join(capsys.readouterr().err.split())  # one message, however the terminal wraps it
    assert err.startswith("Error: the database was unavailable while claiming due messages")
    assert "Traceback" not in err and "File \"" not in err
