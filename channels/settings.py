"""Settings every adapter shares, and how each provider's own settings class is read.

Each provider package owns its settings (``channels/<provider>/settings.py``), read from the
same ``ORCH_...`` environment variables (or ``.env``) as the core's. ``current()`` reads them
again when one of those variables (or ``.env``, or the working directory) changed, and otherwise
reuses the last reading: a reading costs milliseconds, and adapters are built per chunk.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any, TypeVar

from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)
ENV_FILE = ".env"
_readings: dict[type, tuple[Any, Any]] = {}


def settings_config(env_prefix: str) -> SettingsConfigDict:
    # An empty variable (`ORCH_SENDGRID_API_KEY=` as in .env.example) means "use the default".
    return SettingsConfigDict(env_prefix=env_prefix, env_file=ENV_FILE, extra="ignore", env_ignore_empty=True)


def current(cls: type[S]) -> S:
    """``cls()`` as the environment and ``.env`` say now."""
    try:
        env_file: int | None = os.stat(ENV_FILE).st_mtime_ns
    except OSError:
        env_file = None
    key = (os.getcwd(), env_file, tuple(os.environ.get(name) for name in _variables(cls)))
    reading = _readings.get(cls)
    if reading is None or reading[0] != key:
        reading = _readings[cls] = (key, cls())
    return reading[1]


@cache
def _variables(cls: type[BaseSettings]) -> tuple[str, ...]:
    """The environment variables ``cls`` reads (upper case, as they are written)."""
    prefix = cls.model_config.get("env_prefix", "")
    names = [f.validation_alias if isinstance(f.validation_alias, str) else prefix + name
             for name, f in cls.model_fields.items()]
    return tuple(n.upper() for n in names)


class AdapterSettings(BaseSettings):
    """Knobs every provider adapter honours."""

    model_config = settings_config("ORCH_PROVIDER_")

    timeout_seconds: float = 10.0  # ORCH_PROVIDER_TIMEOUT_SECONDS: per request
    concurrency: int = 8  # ORCH_PROVIDER_CONCURRENCY: requests in flight per adapter


class AdapterChoice(BaseSettings):
    """Which adapter serves which channel: ``ORCH_CHANNEL_ADAPTERS='{"email": "outbox"}'``. A
    channel with no entry uses its provider when credentials are present, otherwise the local
    outbox (``channels.registry.adapter_for``)."""

    model_config = settings_config("ORCH_")

    channel_adapters: dict[str, str] = {}
