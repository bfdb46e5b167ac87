"""Finding (and in CI, starting) the PostgreSQL server the tests use; one database per use."""

from __future__ import annotations

import glob
import os
import subprocess
import time
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    from orchestrator.db import normalise_url

    return normalise_url(os.environ.get("ORCH_TEST_POSTGRES_URL", DEFAULT_URL))


def _reachable(url: str) -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means "not usable here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _try_start_local_server() -> None:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )
    time.sleep(2)


def ensure_server() -> tuple[str | None, str | None]:
    """(url, None) when PostgreSQL can be used, else (None, reason).

    In CI a missing server is started; if that fails the caller must fail, not skip.
    """
    url = server_url()
    reason = _reachable(url)
    if reason and os.environ.get("CI"):
        _try_start_local_server()
        reason = _reachable(url)
    return (None, reason) if reason else (url, None)


def admin_engine(url: str):
    return create_engine(url, isolation_level="AUTOCOMMIT")


def create_database(url: str, template: str | None = None) -> str:
    """Creates a fresh database on the server of ``url``; returns its URL."""
    name = f"orch_test_{uuid.uuid4().hex[:12]}"
    engine = admin_engine(url)
    with engine.connect() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str, db_url: str) -> None:
    name = make_url(db_url).database
    engine = admin_engine(url)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
