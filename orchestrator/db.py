"""Engine, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from orchestrator.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver we install."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


SQLITE_WAIT_SECONDS = 30
_WRITER = "orch_sqlite_writer"  # connection info key: this connection holds the writer lock


def _sqlite_single_writer(engine: Engine) -> None:
    """One writer at a time, taken at BEGIN IMMEDIATE: a transaction that reads caps and then
    writes reservations cannot interleave with another writer (no lost updates, no upgrade
    deadlock).

    Threads of one process queue on a lock of their own before asking SQLite: SQLite's busy
    handler polls with growing sleeps (up to 100 ms), so a waiting thread kept sleeping after the
    writer had finished, and the pipeline's dispatch waited seconds behind reservations. Other
    processes still meet SQLite's busy timeout.
    """
    lock = threading.Lock()

    def begin(conn) -> None:
        if not lock.acquire(timeout=SQLITE_WAIT_SECONDS):
            raise TimeoutError(f"waited {SQLITE_WAIT_SECONDS} s for this process's SQLite writer")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            lock.release()
            raise
        conn.info[_WRITER] = True

    def end(conn, *_: object) -> None:
        if conn.info.pop(_WRITER, False):
            lock.release()

    def checkin(_dbapi_conn, record) -> None:  # a connection dropped mid-transaction
        if record.info.pop(_WRITER, False):
            lock.release()

    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", end)
    event.listen(engine, "rollback", end)
    event.listen(engine.pool, "checkin", checkin)


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_WAIT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN

        _sqlite_single_writer(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for ``url`` (default: ORCH_DATABASE_URL), created once per process."""
    return _engine_for(url or get_settings().database_url)


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> str:
    """Create or upgrade the database to the newest schema; returns the revision."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    url = url or get_settings().database_url
    command.upgrade(alembic_config(url), "head")
    with get_engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() or ""
