"""Shared fixtures: a fresh database per test on SQLite and on real PostgreSQL."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from orchestrator.db import get_engine, upgrade
from orchestrator.settings import get_settings
from tests.support import postgres

pytest_plugins = ["tests.support.fakes.fixtures", "tests.support.prefect_harness"]

# CI replays the same generated examples every run (a failure there is reproducible, never luck)
# and does not fail a property because a loaded machine made data generation slow.
settings.register_profile("ci", derandomize=True, suppress_health_check=[HealthCheck.too_slow])
if os.environ.get("CI"):
    settings.load_profile("ci")


def _activate(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("ORCH_DATABASE_URL", url)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """No test reads a developer's .env or writes into the working tree."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ORCH_OUTBOX_DIR", str(tmp_path / "outbox"))
    for key in list(os.environ):
        if key.startswith(("ORCH_SENDGRID", "ORCH_TWILIO", "ORCH_X_", "TWILIO_EDGE", "TWILIO_REGION")):
            monkeypatch.delenv(key, raising=False)
    # The fake Twilio is no long code: its default of 1 SMS per second would make every test wait.
    # Tests of that default set their own rate.
    monkeypatch.setenv("ORCH_TWILIO_RATE", "1000")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'orchestrator.db'}"
    upgrade(url)
    _activate(monkeypatch, url)
    return url


@pytest.fixture(scope="session")
def pg_template():
    """A migrated PostgreSQL database that per-test databases are copied from."""
    server, reason = postgres.ensure_server()
    if server is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {reason}")
        pytest.skip(f"no PostgreSQL reachable at {postgres.server_url()}: {reason}")
    template_url = postgres.create_database(server)
    upgrade(template_url)
    get_engine(template_url).dispose()
    
    yield server, make_url(template_url).database
    postgres.drop_database(server, template_url)


@pytest.fixture
def pg_url(pg_template, monkeypatch) -> str:
    server, template = pg_template
    url = postgres.create_database(server, template=template)
    _activate(monkeypatch, url)
    yield url
    get_engine(url).dispose()
    postgres.drop_database(server, url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
