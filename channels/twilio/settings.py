"""Twilio's settings: ``ORCH_TWILIO_...`` in the environment or ``.env``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from channels.settings import settings_config


class TwilioSettings(BaseSettings):
    model_config = settings_config("ORCH_TWILIO_")

    account_sid: str | None = None
    auth_token: SecretStr | None = None  # also checks the signatures of Twilio's webhooks
    from_number: str | None = None
    messaging_service_sid: str | None = None
    base_url: str | None = None
    # Where Twilio reaches our status callbacks: the web app's public URL (the core reads it too).
    public_base_url: str = Field("http://127.0.0.1:8000", validation_alias="ORCH_PUBLIC_BASE_URL")
