"""X's settings: ``ORCH_X_...`` in the environment or ``.env`` (OAuth 1.0a user context)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from channels.settings import settings_config


class XSettings(BaseSettings):
    model_config = settings_config("ORCH_X_")

    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None
    api_base_url: str | None = None
