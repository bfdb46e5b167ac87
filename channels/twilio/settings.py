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
    # ORCH_TWILIO_RATE: messages per second the sender takes, the SMS lane's default when the policy's
    # ``rates:`` names neither ``sms`` nor ``twilio``. A long code takes about 1 message per second
    # (toll-free numbers, short codes and Messaging Services with several numbers more: raise it);
    # 0 declares none (then only the policy paces SMS).
    rate: float = Field(1.0, ge=0)
    # Where Twilio reaches our status callbacks: the web app's public URL (the core reads it too).
    public_base_url: str = Field("http://127.0.0.1:8000", validation_alias="ORCH_PUBLIC_BASE_URL")
