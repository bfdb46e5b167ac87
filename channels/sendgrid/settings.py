"""SendGrid's settings: ``ORCH_SENDGRID_...`` in the environment or ``.env``."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from channels.settings import settings_config


class SendGridSettings(BaseSettings):
    model_config = settings_config("ORCH_SENDGRID_")

    api_key: SecretStr | None = None
    host: str = "https://api.sendgrid.com"
    from_email: str = "hello@example.com"
    from_name: str = "Example Co"
    reply_to: str | None = None
    sandbox: bool = False
    batch_size: int = 1000  # merged messages per Mail Send request (1: one by one)
    webhook_public_key: str | None = None  # verifies the signed Event Webhook
    inbound_token: SecretStr | None = None  # the password of the Inbound Parse webhook's URL
