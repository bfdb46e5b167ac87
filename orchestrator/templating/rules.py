"""The tone guard's configuration (``tone_rules.yaml`` in the templates directory), validated.

Each tone promises something measurable: a readability grade, a sentiment range, how many
exclamation marks and ALL-CAPS words it tolerates, phrases it never uses, and elements a
message in that tone must contain. The same file holds the channel length limits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.templating.errors import TemplateProblem

# textstat metrics that work offline (no word-list download) and return a school grade.
ReadabilityMetric = Literal["automated_readability_index", "coleman_liau_index"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(patterns: dict[str, str]) -> dict[str, str]:
    for name, pattern in patterns.items():
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{name}: invalid regular expression {pattern!r}: {exc}") from None
    return patterns


class ToneRule(_Strict):
    description: str = ""
    max_grade: float | None = None  # readability grade ceiling
    sentiment: tuple[float, float] = (-1.0, 1.0)  # VADER compound score range
    max_exclamations: int | None = None
    max_caps_words: int | None = None
    banned_phrases: list[str] = []
    required: dict[str, str] = {}  # element name -> case-insensitive regex the text must match

    _check_required = field_validator("required")(_compile)

    @model_validator(mode="after")
    def _range(self) -> ToneRule:
        low, high = self.sentiment
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError("sentiment must be [low, high] with -1 <= low <= high <= 1")
        return self


class MessageToneRule(_Strict):
    required: dict[str, str] = {}
    banned_phrases: list[str] = []  # e.g. "good news" where the facts name the problem
    channels: list[str] | None = None  # None: every channel of the message

    _check_required = field_validator("required")(_compile)


class SmsLimits(_Strict):
    max_segments: int = Field(3, ge=1)
    marketing_max_segments: int = Field(2, ge=1)


class EmailLimits(_Strict):
    subject_max_chars: int = Field(78, ge=10)


class SocialLimits(_Strict):
    post_max_weighted: int = Field(280, ge=1)
    dm_max_chars: int = Field(10000, ge=1)


class PhoneLimits(_Strict):
    min_script_chars: int = Field(40, ge=1)


class ChannelLimits(_Strict):
    sms: SmsLimits = SmsLimits()
    email: EmailLimits = EmailLimits()
    social: SocialLimits = SocialLimits()
    phone: PhoneLimits = PhoneLimits()


class ToneRules(_Strict):
    readability_metric: ReadabilityMetric = "automated_readability_index"
    # Readability and sentiment models are English; other locales get the remaining rules.
    scored_locales: list[str] = ["en"]
    caps_allowlist: list[str] = []  # acronyms and keywords that are not shouting (UTC, STOP...)
    channels: ChannelLimits = ChannelLimits()
    tones: dict[str, ToneRule]
    # Other names for the tones (e.g. the contact policy's vocabulary): alias -> tone.
    aliases: dict[str, str] = {}
    # message -> tone (or "*" for every tone) -> extra required elements
    messages: dict[str, dict[str, MessageToneRule]] = {}


    @model_validator(mode="after")
    def _known_names(self) -> ToneRules:
        unknown = {alias: tone for alias, tone in self.aliases.items() if tone not in self.tones}
        if unknown:
            raise ValueError(f"aliases point to unknown tones: {unknown}")
        clashing = sorted(set(self.aliases) & set(self.tones))
        if clashing:
            raise ValueError(f"aliases shadow tones: {clashing}")
        return self

    def resolve_tone(self, tone: str) -> str | None:
        """The tone a name stands for, or None if it is neither a tone nor an alias."""
        if tone in self.tones:
            return tone
        return self.aliases.get(tone)


def load_rules(path: Path) -> ToneRules:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise TemplateProblem(f"{path}: tone rules file not found") from None
    except yaml.YAMLError as exc:
        raise TemplateProblem(f"{path}: not valid YAML: {exc}") from None
    try:
        return ToneRules.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise TemplateProblem(f"{path}: {problems}") from None
