"""Settings from the environment (prefix ``ORCH_``), optionally from a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


def project_file(name: str) -> Path:
    """A project file (policy.yaml, segments.yaml, ...): the working directory wins over the repo."""
    local = Path.cwd() / name
    return local if local.exists() else REPO_ROOT / name


class Settings(BaseSettings):
    # An empty variable (`ORCH_INCIDENT_TOKEN=` as in .env.example) means "use the default".
    # Each provider's settings (credentials, hosts) live with its adapter: channels/<provider>/settings.py;
    # which adapter serves a channel (ORCH_CHANNEL_ADAPTERS) is channels.settings.AdapterChoice.
    model_config = SettingsConfigDict(
        env_prefix="ORCH_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    database_url: str = "sqlite:///orchestrator.db"
    public_base_url: str = "http://127.0.0.1:8000"
    # Signs unsubscribe and preference-centre links. The default only suits local demos.
    secret_key: SecretStr = SecretStr("insecure-local-demo-key-change-me")
    default_phone_region: str = "US"
    default_timezone: str = "UTC"
    default_locale: str = "en"

    policy_file: Path | None = None
    segments_file: Path | None = None
    templates_dir: Path = REPO_ROOT / "templates"
    outbox_dir: Path = Path("outbox")

    # Where a campaign's chunk tasks run: "thread" (this process) or "dask" (a Dask cluster: the
    # scheduler at dask_address, else a local cluster of dask_workers processes).
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = None
    dask_workers: int = 2

    # Unix niceness a bulk flow (a campaign) adds to its threads, so urgent work on the same machine
    # gets the CPU first (flows/bulk_priority.py); 0 turns it off.
    bulk_cpu_niceness: int = Field(default=10, ge=0, le=19)
    # Net allocations between young garbage collections while a pipeline runs
    # (flows/garbage_collection.py); 0 keeps Python's own (700).
    pipeline_gc_threshold: int = Field(default=50_000, ge=0)

    incident_token: SecretStr | None = None
    events_token: SecretStr | None = None  # bearer token for POST /events (conversions)
    prefect_api_url: str | None = None
    # A running `orchestrator serve` (its URL) that `orchestrator outage notify` hands notices to.
    service_url: str | None = None

    company_postal_address: str = "Example Co, 1 Market Street, San Francisco, CA 94105, USA"

    @property
    def policy_path(self) -> Path:
        return self.policy_file or project_file("policy.yaml")

    @property
    def segments_path(self) -> Path:
        return self.segments_file or project_file("segments.yaml")


@lru_cache
def get_settings() -> Settings:
    return Settings()
