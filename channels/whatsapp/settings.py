"""The WhatsApp adapter's own settings, from the environment (prefix ``ORCH_TWILIO_``), and the
map from our messages to approved Twilio Content templates.

``ORCH_TWILIO_WHATSAPP_CONTENT_FILE`` (default ``whatsapp_content.yaml``) maps a message and a
locale to a template and its variables, each variable read from the message's data::

    outage_notice:
      en: {content_sid: HX..., variables: {"1": incident_title, "2": status_page_url}}
      es: {content_sid: HX..., variables: {"1": incident_title, "2": status_page_url}}

A locale with no entry uses its language (``pt-BR`` -> ``pt``); a message with no entry has no
template, so outside the 24-hour window it cannot go out on WhatsApp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from channels.base import ConfigurationError

_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


class WhatsAppSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ORCH_TWILIO_", env_file=".env", extra="ignore", env_ignore_empty=True,
        populate_by_name=True,
    )

    account_sid: str | None = None
    auth_token: SecretStr | None = None
    whatsapp_from: str | None = None  # "whatsapp:+14155238886", the approved sender
    whatsapp_messaging_service_sid: str | None = None  # or a Messaging Service with that sender
    whatsapp_content_file: Path = Path("whatsapp_content.yaml")
    base_url: str | None = None  # tests: a local fake Twilio
    public_base_url: str = Field(
        "http://127.0.0.1:8000", validation_alias=AliasChoices("ORCH_PUBLIC_BASE_URL")
    )
    timeout_seconds: float = Field(10.0, validation_alias=AliasChoices("ORCH_PROVIDER_TIMEOUT_SECONDS"))
    concurrency: int = Field(8, validation_alias=AliasChoices("ORCH_PROVIDER_CONCURRENCY"))

    @property
    def complete(self) -> bool:
        return bool(self.account_sid and self.auth_token and
                    (self.whatsapp_from or self.whatsapp_messaging_service_sid))


@dataclass(frozen=True)
class ContentTemplate:
    content_sid: str
    variables: dict[str, str]  # Twilio's placeholder ("1") -> key in the message's data

    def values(self, data: dict[str, Any]) -> dict[str, str]:
        missing = [key for key in self.variables.values() if data.get(key) in (None, "")]
        if missing:
            raise KeyError(", ".join(missing))
        return {slot: str(data[key]) for slot, key in self.variables.items()}


ContentMap = dict[str, dict[str, ContentTemplate]]


def load_content_map(path: Path) -> ContentMap:
    """The file's templates; a missing file is an empty map, a broken one a ConfigurationError."""
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot read the WhatsApp content map: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{path}: expected message -> locale -> {{content_sid, variables}}")
    out: ContentMap = {}
    for message, locales in raw.items():
        if not isinstance(locales, dict):
            raise ConfigurationError(f"{path}: {message}: expected locale -> {{content_sid, variables}}")
        for locale, entry in locales.items():
            where = f"{path}: {message}.{locale}"
            if not isinstance(entry, dict) or not _SID.match(str(entry.get("content_sid", ""))):
                raise ConfigurationError(f"{where}: content_sid must be a Content SID (HX + 32 hex digits)")
            variables = entry.get("variables") or {}
            if not isinstance(variables, dict):
                raise ConfigurationError(f"{where}: variables must map placeholders to data keys")
            out.setdefault(str(message), {})[str(locale)] = ContentTemplate(
                str(entry["content_sid"]), {str(k): str(v) for k, v in variables.items()}
            )
    return out


def template_for(content: ContentMap, message: str, locale: str) -> ContentTemplate | None:
    locales = content.get(message) or {}
    return locales.get(locale) or locales.get(locale.split("-", 1)[0])
