"""``orchestrator init``: create or upgrade the database."""

from __future__ import annotations

import typer

from orchestrator.cli.output import console, database_errors
from orchestrator.privacy import redact_url


def init(
    database_url: str = typer.Option(
        None, "--database-url", help="Overrides ORCH_DATABASE_URL for this command."
    ),
) -> None:
    """Create the database, or upgrade it to the newest schema (Alembic migrations)."""
    from orchestrator.db import upgrade
    from orchestrator.settings import get_settings

    url = database_url or get_settings().database_url
    with database_errors(url):
        revision = upgrade(url)
    console.print(f"[green]Database ready[/] at {redact_url(url)} (schema revision {revision})")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
