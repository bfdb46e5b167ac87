"""Campaign experiments: variants (a tone, a template) with weights, and a holdout group.

Assignment is a pure function of (campaign name, customer id): SHA-256 of the pair gives a
point in [0, 1); the first ``holdout`` share of that line is the holdout, the rest is split by
the variants' weights. A re-run or a retry computes the same variant for every customer, so
no table of assignments is needed and no run can move a customer to another group.

Holdout customers still get a ledger row, ``suppressed`` with the reason
``holdout:<campaign>``: ``explain`` says why they heard nothing, suppressed rows hold no cap
slot, and the report finds the group without recomputing anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from orchestrator.policy import Intent

HOLDOUT = "holdout"
SINGLE_VARIANT = "main"  # everyone not held out, when a campaign declares a holdout but no variants
MAX_NAME = 32


class ExperimentError(ValueError):
    """Variants or a holdout that cannot work; nothing was reserved or sent."""


def parse_percent(value: Any) -> float:
    """``5``, ``5.0``, ``"5"`` or ``"5%"``: a share in percent (0 <= share < 100)."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            value = float(text) if text else 0.0
        except ValueError:
            raise ValueError(f"holdout must be a percentage such as 5 or 5%, not {value!r}") from None
    if value is None:
        return 0.0
    share = float(value)
    if not 0 <= share < 100:
        raise ValueError(f"holdout must be at least 0% and below 100%, not {share:g}%")
    return share


Percent = Annotated[float, BeforeValidator(parse_percent)]


class VariantSpec(BaseModel):
    """One arm of an experiment, as a campaign declares it (CLI, prefect.yaml, the Prefect UI form)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=MAX_NAME,
                             description="Defaults to the tone or template.")
    tone: str | None = Field(default=None, description="Tone for this variant (default: the campaign's).")
    template: str | None = Field(default=None,
                                 description="Template for this variant (default: the campaign's).")
    weight: float = Field(default=1.0, gt=0, description="Relative share of the audience.")


@dataclass(frozen=True)
class Variant:
    name: str
    tone: str | None
    template: str | None
    weight: float


@dataclass(frozen=True)
class Experiment:
    variants: tuple[Variant, ...] = ()
    holdout_percent: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.variants) or self.holdout_percent > 0

    def assign(self, campaign: str, customer_id: int) -> str | None:
        """The variant name (or ``holdout``) of this customer in this campaign; None without an experiment."""
        if not self.active:
            return None
        point = _unit(campaign, customer_id)
        held = self.holdout_percent / 100
        if point < held:
            return HOLDOUT
        if not self.variants:
            return SINGLE_VARIANT
        point = (point - held) / (1 - held)
        total = sum(v.weight for v in self.variants)
        edge = 0.0
        for variant in self.variants:
            edge += variant.weight / total
            if point < edge:
                return variant.name
        return self.variants[-1].name  # rounding at the very top of the line

    def apply(self, intent: Intent, campaign: str) -> Intent:
        """The intent for this customer's group: the variant's tone and template, or held out."""
        name = self.assign(campaign, intent.customer_id)
        if name is None:
            return intent
        if name == HOLDOUT:
            return replace(intent, variant=HOLDOUT, holdout_of=campaign)
        variant = next((v for v in self.variants if v.name == name), None)
        if variant is None:
            return replace(intent, variant=name)
        return replace(intent, variant=name, tone=variant.tone or intent.tone,
                       template=variant.template or intent.template)

    def as_records(self) -> list[dict[str, Any]]:
        """The variants as stored on the campaign row."""
        return [{"name": v.name, "tone": v.tone, "template": v.template, "weight": v.weight}
                for v in self.variants]


def _unit(campaign: str, customer_id: int) -> float:
    digest = hashlib.sha256(f"{campaign}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_variant_option(text: str) -> VariantSpec:
    """``tone=empathetic``, ``tone=professional,weight=2,template=spring_sale_b,name=B`` (CLI)."""
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ExperimentError(f"--variant {text!r}: expected KEY=VALUE pairs separated by commas")
        fields[key.strip()] = value.strip()
    try:
        return VariantSpec.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'variant'}: {e['msg']}" for e in exc.errors())
        raise ExperimentError(f"--variant {text!r}: {problems}") from None


def build_experiment(variants: Sequence[VariantSpec | dict[str, Any]] | None, holdout: Any = 0) -> Experiment:
    """Validates the declared variants and holdout (names unique, weights positive)."""
    try:
        specs = [v if isinstance(v, VariantSpec) else VariantSpec.model_validate(v) for v in variants or []]
        share = parse_percent(holdout)
    except (ValidationError, ValueError) as exc:
        raise ExperimentError(str(exc)) from None
    built: list[Variant] = []
    for number, spec in enumerate(specs, start=1):
        name = (spec.name or spec.tone or spec.template or f"v{number}").strip()[:MAX_NAME]
        if name == HOLDOUT:
            raise ExperimentError(f"{HOLDOUT!r} is the name of the holdout group: name the variant otherwise")
        if any(v.name == name for v in built):
            raise ExperimentError(f"two variants are named {name!r}: give them a name= each")
        built.append(Variant(name, spec.tone, spec.template, spec.weight))
    if len(built) == 1 and share == 0:
        raise ExperimentError("one variant and no holdout compares nothing: "
                              "declare two or more, or a holdout")
    return Experiment(tuple(built), share)


def save_experiment(campaign_id: int, experiment: Experiment, goal_event: str | None,
                    attribution_days: int) -> None:
    """Stores the experiment on the campaign row. A campaign that has already reserved messages
    keeps its experiment: changing it would move customers between groups mid-campaign."""
    from sqlmodel import select

    from orchestrator.db import session_scope
    from orchestrator.models import Campaign, Message

    if attribution_days < 1:
        raise ExperimentError("attribution_days must be at least 1")
    if goal_event is not None and not 0 < len(goal_event.strip()) <= 64:
        raise ExperimentError("goal_event must be a name of 1 to 64 characters")
    with session_scope() as session:
        campaign = session.get(Campaign, campaign_id)
        assert campaign is not None
        declared = (experiment.as_records(), float(experiment.holdout_percent))
        stored = (list(campaign.variants or []), float(campaign.holdout_percent or 0))
        if declared != stored and session.exec(
                select(Message.id).where(Message.campaign_id == campaign_id).limit(1)).first() is not None:
            raise ExperimentError(f"campaign {campaign.name!r} already ran with other variants or holdout; "
                                  "a new experiment needs a new campaign name")
        campaign.variants, campaign.holdout_percent = declared
        campaign.goal_event = goal_event.strip() if goal_event else None
        campaign.attribution_days = attribution_days
        session.add(campaign)
