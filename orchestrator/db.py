"""Engine, sessions and schema upgrades (Alembic) for SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Integer, String, bindparam, event, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, create_engine

from orchestrator.privacy import redact_text
from orchestrator.settings import get_settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0  # how long a SQLite writer waits for another one's lock
# Waits between attempts of work that must survive a database blip (a PostgreSQL restart, a
# SQLite lock held past the busy timeout): about a minute in all.
BLIP_RETRY_DELAYS: Sequence[float] = (0.5, 1, 2, 4, 8, 15, 15, 15)
T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database did not answer (locked, restarting, unreachable) for as long as we waited.
    Its message is one line, without SQL or parameters."""


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3, the driver we install."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def member_of(session: OrmSession | Connection | Engine, column: Any, values: Iterable[Any]
              ) -> ColumnElement[bool]:
    """``column IN values`` bound as ONE parameter (a JSON array on SQLite, an array on PostgreSQL).

    A thousand-item IN list costs SQLAlchemy a re-render per query (a bind name per value); one
    parameter keeps the compiled statement cached, which matters at thousands of messages a second.
    """
    values = list(values)
    bind = session.get_bind() if isinstance(session, OrmSession) else session
    if bind.dialect.name == "sqlite":
        array = func.json_each(bindparam(None, json.dumps(values), type_=String))
        return column.in_(select(literal_column("value")).select_from(array).scalar_subquery())
    # A semi-join on unnest() lets the planner use the index; "= ANY(array)" scans linearly.
    item_type = Integer if isinstance(column.type, Integer) else String
    array = func.unnest(bindparam(None, values, type_=ARRAY(item_type)))
    return column.in_(select(array).scalar_subquery())


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    cur.close()


READ_ONLY = "orchestrator_read_only"  # the execution option of ``read_scope``'s sessions


def _sqlite_begin(conn: Connection) -> None:
    # One writer at a time, taken at BEGIN: a transaction that reads caps and then writes
    # reservations cannot interleave with another writer (no lost updates, no upgrade deadlock).
    # A read-only transaction (``read_scope``) begins DEFERRED: with WAL it reads the last commit
    # without waiting for the writer, and SQLite refuses any write in it (``query_only``).
    read_only = bool(conn.get_execution_options().get(READ_ONLY))
    dbapi = conn.connection.dbapi_connection
    if conn.connection.info.get("query_only", False) != read_only and dbapi is not None:
        dbapi.execute(f"PRAGMA query_only={int(read_only)}")
        conn.connection.info["query_only"] = read_only
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False,
                                                  "timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        event.listen(engine, "connect", _sqlite_pragmas)

        @event.listens_for(engine, "connect")
        def _no_pysqlite_autobegin(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN

        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def get_engine(url: str | None = None) -> Engine:
    """The shared engine for ``url`` (default: ORCH_DATABASE_URL), created once per process."""
    return _engine_for(url or get_settings().database_url)


@lru_cache(maxsize=16)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


@lru_cache(maxsize=16)
def _reader_for(url: str) -> Engine:
    return _engine_for(url).execution_options(**{READ_ONLY: True})


class ShortTransactionReader:
    """Runs each query in a read-only transaction of its own and returns its rows, already fetched:
    an audience streamed chunk by chunk reads each chunk from the last commit."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def execute(self, statement: Any) -> Any:
        with read_scope(self.url) as session:
            return session.execute(statement).freeze()()


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


@contextmanager
def read_scope(url: str | None = None) -> Iterator[Session]:
    """A session that only reads. On SQLite it neither waits for the one writer nor holds others
    up (a busy campaign's writes made every read of an outage notice queue for the lock); a write
    in it fails. Elsewhere it is an ordinary session.

    Not for the reads of every dispatch batch: compose's checks read this way made a 100,000-customer
    campaign 9% slower (its threads then read beside the reservations instead of after them, and
    two cores had no room for it); they stay in a writer's transaction."""
    with Session(_reader_for(url or get_settings().database_url), expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


def is_unavailable(exc: BaseException) -> bool:
    """A database error that says "not now" (lock, lost connection, server restarting), not "never"
    (a constraint, a missing table): the transaction rolled back and trying again is safe."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        return _not_now(exc.orig)
    # Raised while the driver was handling a lost connection: the pool's ping on a connection whose
    # server session had just been killed fails, and restoring the connection's autocommit then
    # raises psycopg's ProgrammingError ("can't change 'autocommit' now").
    lost = exc.orig.__context__ if isinstance(exc, DBAPIError) and exc.orig is not None else None
    return lost is not None and any(kind.__name__ == "OperationalError" for kind in type(lost).__mro__) \
        and _not_now(lost)


def _not_now(error: BaseException | None) -> bool:
    """Whether the driver's OperationalError is a lock or a lost connection."""
    if type(error).__module__.startswith("sqlite3"):  # SQLite says "no such table" this way too
        text = str(error).lower()
        return any(word in text for word in ("locked", "busy", "disk i/o", "unable to open"))
    return True


def brief_cause(exc: BaseException) -> str:
    """The driver's first line, without SQLAlchemy's SQL and parameters, masked."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return redact_text(f"{type(orig).__name__}: {first}"[:300])


def retry_while_unavailable(work: Callable[[], T], *, what: str,
                            delays: Sequence[float] | None = None) -> T:
    """Runs ``work`` (one transaction) again after each blip, waiting ``delays`` in turn; then
    ``DatabaseUnavailable`` saying what could not be done. Other errors pass through at once."""
    waits = list(BLIP_RETRY_DELAYS if delays is None else delays)
    for attempt in range(len(waits) + 1):
        try:
            return work()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            if attempt == len(waits):
                raise DatabaseUnavailable(
                    f"the database was unavailable while {what} ({attempt + 1} attempts): {brief_cause(exc)}"
                ) from exc
            log.warning("database unavailable while %s (%s); trying again in %g s", what, brief_cause(exc),
                        waits[attempt])
            time.sleep(waits[attempt])
    raise AssertionError("unreachable")


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
