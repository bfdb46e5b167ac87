"""Which messages, tones, channels and locales exist: the templates directory, read once.

Layout (see templates/README.md)::

    templates/brand.yaml, tone_rules.yaml, sample_data.yaml
    templates/partials/<name>.<ext>                  shared brand pieces, optional <name>.<locale>.<ext>
    templates/messages/<message>/message.yaml        topic, marketing flag, facts, default tone, channels
    templates/messages/<message>/<tone>/<part>.<ext> one variant, optional <part>.<locale>.<ext>

Every template source is loaded into memory when the catalog is built, so rendering never
touches the file system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from channels.channel_set import installed_channels
from orchestrator.settings import get_settings
from orchestrator.templating.errors import RenderError, TemplateProblem
from orchestrator.templating.rules import ToneRules, load_rules

TEMPLATE_SUFFIXES = (".txt", ".html")


def channel_parts() -> dict[str, dict[str, str]]:
    """Every installed channel's variants ("email", "sms", "social:post"...): role -> template file,
    as the channels' specs declare them."""
    specs = installed_channels().values()
    return {vkey: dict(parts) for spec in specs for vkey, parts in spec.variants.items()}


class _MessageFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    topic: str
    marketing: bool = False
    default_tone: str
    facts: list[str] = []  # the variables every channel's variant must state
    channels: list[str]  # variants of installed channels: email, sms, social:post, whatsapp...


@dataclass(frozen=True)
class MessageInfo:
    name: str
    topic: str
    marketing: bool
    required_variables: tuple[str, ...]  # the facts, as names under `data`
    default_tone: str
    tones: tuple[str, ...]  # tones with their own variant files (default tone first)
    channels: tuple[str, ...]  # "email", "sms", "social", "phone", "whatsapp"...
    variants: tuple[str, ...]  # channel variants incl. kinds: "social:post", "social:dm"
    locales: tuple[str, ...]  # default locale first
    description: str = ""

    @property
    def social_kinds(self) -> tuple[str, ...]:
        return self.kinds("social")

    def kinds(self, channel: str) -> tuple[str, ...]:
        return tuple(v.split(":", 1)[1] for v in self.variants if v.startswith(f"{channel}:"))


@dataclass
class Catalog:
    root: Path
    default_locale: str
    sources: dict[str, str]  # template name (posix path under root) -> source
    messages: dict[str, MessageInfo]
    # (message, tone, file key, locale) -> template name
    variants: dict[tuple[str, str, str, str], str]
    rules: ToneRules
    brand: dict[str, Any]
    sample_data: dict[str, Any] = field(default_factory=dict)
    # variant key -> role -> template file, for the channels installed when the catalog was read
    parts: dict[str, dict[str, str]] = field(default_factory=channel_parts)

    def info(self, message: str) -> MessageInfo:
        try:
            return self.messages[message]
        except KeyError:
            known = ", ".join(sorted(self.messages)) or "none"
            raise RenderError(f"unknown message {message!r} (known: {known})") from None


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateProblem(f"{path}: not valid YAML: {exc}") from None


def _split_name(filename: str, default_locale: str) -> tuple[str, str]:
    """'sms.es.txt' -> ('sms.txt', 'es'); 'sms.txt' -> ('sms.txt', default locale)."""
    parts = filename.split(".")
    if len(parts) == 3:
        return f"{parts[0]}.{parts[2]}", parts[1]
    return filename, default_locale


def _load_message(root: Path, folder: Path, catalog: Catalog) -> None:
    name = folder.name
    meta_path = folder / "message.yaml"
    try:
        meta = _MessageFile.model_validate(_read_yaml(meta_path) or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise TemplateProblem(f"{meta_path}: {problems}") from None
    bad = [c for c in meta.channels if c not in catalog.parts]
    if bad:
        raise TemplateProblem(f"{meta_path}: unknown channels {bad} (installed: {', '.join(catalog.parts)})")
    tones: list[str] = []
    locales = {catalog.default_locale}
    for tone_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if tone_dir.name not in catalog.rules.tones:
            raise TemplateProblem(f"{tone_dir}: {tone_dir.name!r} is not a tone in tone_rules.yaml")
        tones.append(tone_dir.name)
        for file in sorted(tone_dir.iterdir()):
            if file.suffix not in TEMPLATE_SUFFIXES:
                continue
            key, locale = _split_name(file.name, catalog.default_locale)
            locales.add(locale)
            catalog.variants[(name, tone_dir.name, key, locale)] = file.relative_to(root).as_posix()
    if meta.default_tone not in tones:
        raise TemplateProblem(f"{meta_path}: default_tone {meta.default_tone!r} has no folder in {folder}")
    tones.sort(key=lambda t: t != meta.default_tone)
    channels = tuple(dict.fromkeys(v.split(":", 1)[0] for v in meta.channels))
    catalog.messages[name] = MessageInfo(
        name=name, topic=meta.topic, marketing=meta.marketing, required_variables=tuple(meta.facts),
        default_tone=meta.default_tone, tones=tuple(tones), channels=channels,
        variants=tuple(meta.channels),
        locales=tuple(sorted(locales, key=lambda loc: (loc != catalog.default_locale, loc))),
        description=meta.description,
    )


def load_catalog(root: Path, default_locale: str = "en") -> Catalog:
    root = root.resolve()
    if not (root / "messages").is_dir():
        raise TemplateProblem(f"{root}: no messages/ folder (is ORCH_TEMPLATES_DIR right?)")
    rules = load_rules(root / "tone_rules.yaml")
    brand_path = root / "brand.yaml"
    brand = (_read_yaml(brand_path) or {}) if brand_path.exists() else {}
    sources = {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in TEMPLATE_SUFFIXES
    }
    sample_path = root / "sample_data.yaml"
    sample = (_read_yaml(sample_path) or {}) if sample_path.exists() else {}
    catalog = Catalog(root, default_locale, sources, {}, {}, rules, brand, sample)
    for folder in sorted(p for p in (root / "messages").iterdir() if p.is_dir()):
        _load_message(root, folder, catalog)
    return catalog


@lru_cache(maxsize=8)
def _cached_catalog(root: Path, default_locale: str) -> Catalog:
    return load_catalog(root, default_locale)


def get_catalog() -> Catalog:
    """The catalog for ORCH_TEMPLATES_DIR, built once per process (see ``reload_templates``)."""
    settings = get_settings()
    return _cached_catalog(Path(settings.templates_dir), settings.default_locale)


def list_messages() -> list[str]:
    return sorted(get_catalog().messages)


def message_info(message: str) -> MessageInfo:
    return get_catalog().info(message)
