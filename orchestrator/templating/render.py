"""``render()``: one message, in one tone, on one channel, for one customer context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from channels.channel_set import installed_channels
from orchestrator.templating.environment import TemplateSet, Variant, get_template_set
from orchestrator.templating.errors import LengthError, RenderError
from orchestrator.templating.lengths import Metrics, chars_metrics, sms_metrics, x_post_metrics
from orchestrator.templating.rules import ChannelLimits


@dataclass(frozen=True)
class Rendered:
    message: str
    channel: str
    kind: str | None  # "post" or "dm" for social, else None
    tone: str  # the tone actually used (after falling back to the message's default tone)
    locale: str  # the locale actually used
    subject: str | None
    text: str
    html: str | None
    metrics: Metrics  # of the part the channel limits (email: the subject)


def measure(vkey: str, subject: str | None, text: str, limits: ChannelLimits, marketing: bool) -> Metrics:
    """The channel's length figures; over the limit (or refused) raises LengthError with the numbers."""
    if vkey == "email":
        metrics = chars_metrics("email subject", subject or "", limits.email.subject_max_chars)
    elif vkey == "sms":
        cap = limits.sms.marketing_max_segments if marketing else limits.sms.max_segments
        metrics = sms_metrics(text, cap)
    elif vkey == "social:post":
        metrics = x_post_metrics(text, limits.social.post_max_weighted)
    elif vkey == "social:dm":
        metrics = chars_metrics("social dm", text, limits.social.dm_max_chars)
    elif vkey == "phone":
        metrics = chars_metrics("phone", text, None)
        if len(text) < limits.phone.min_script_chars:
            raise LengthError(f"phone: call script is {len(text)} chars, "
                              f"min {limits.phone.min_script_chars}: the agent needs a script")
    else:  # a plug-in channel: the characters its spec allows
        spec = installed_channels().get(vkey.split(":", 1)[0])
        metrics = chars_metrics(vkey, text, spec.max_chars if spec is not None else None)
    if metrics.refused:
        raise LengthError(metrics.describe())
    return metrics


@dataclass(frozen=True)
class Target:
    """What one (message, tone, channel, locale) resolves to, after tone and locale fallback."""

    message: str
    channel: str
    kind: str | None
    vkey: str
    marketing: bool
    topic: str
    variant: Variant


def resolve(templates: TemplateSet, message: str, *, tone: str | None, channel: str,
            locale: str | None = None, kind: str | None = None) -> Target:
    catalog = templates.catalog
    info = catalog.info(message)
    channels = {vkey.split(":", 1)[0] for vkey in catalog.parts}
    if channel not in channels:
        raise RenderError(f"unknown channel {channel!r} (use {', '.join(sorted(channels))})")
    kinds = [vkey.split(":", 1)[1] for vkey in catalog.parts if vkey.startswith(f"{channel}:")]
    if kinds and kind is not None and kind not in kinds:
        raise RenderError(f"unknown {channel} kind {kind!r} (use {', '.join(kinds)})")
    if kinds and kind is None:  # the channel's first kind the message has
        kind = next((k for k in kinds if f"{channel}:{k}" in info.variants), kinds[0])
    vkey = f"{channel}:{kind}" if kinds else channel
    if vkey not in info.variants:
        raise RenderError(f"{message} has no {vkey} variant (it has: {', '.join(info.variants)})")
    resolved = catalog.rules.resolve_tone(tone or info.default_tone)
    if resolved is None:
        names = [*catalog.rules.tones, *catalog.rules.aliases]
        raise RenderError(f"unknown tone {tone!r} (use {', '.join(names)})")
    variant = templates.variant(message, resolved, vkey, locale or catalog.default_locale)
    return Target(message, channel, kind if kinds else None, vkey, info.marketing, info.topic, variant)


def variables_for(target: Target, context: Mapping[str, Any]) -> dict[str, Any]:
    return {**context, "message": {"name": target.message, "topic": target.topic,
                                   "marketing": target.marketing, "tone": target.variant.tone,
                                   "locale": target.variant.locale, "channel": target.vkey}}


def render_parts(templates: TemplateSet, target: Target, variables: Callable[[str], Mapping[str, Any]]
                 ) -> tuple[str | None, str, str | None]:
    """(subject, text, html) of ``target``; ``variables(role)`` gives each part its variables."""
    variant = target.variant
    text = templates.render_part(variant, "text", variables("text")).strip()
    if not text:
        raise RenderError(f"{variant.names['text']}: rendered text is empty")
    subject = html = None
    if target.vkey == "email":
        subject = " ".join(templates.render_part(variant, "subject", variables("subject")).split())
        if not subject:
            raise RenderError(f"{variant.names['subject']}: rendered subject is empty")
        html = templates.render_part(variant, "html", variables("html")).strip()
    return subject, text, html


def finish(templates: TemplateSet, target: Target, subject: str | None, text: str, html: str | None
           ) -> Rendered:
    """Measures the parts against the channel's limits (LengthError when over) and packs them."""
    metrics = measure(target.vkey, subject, text, templates.catalog.rules.channels, target.marketing)
    return Rendered(target.message, target.channel, target.kind, target.variant.tone, target.variant.locale,
                    subject, text, html, metrics)


def render_target(templates: TemplateSet, target: Target, context: Mapping[str, Any]) -> Rendered:
    variables = variables_for(target, context)
    return finish(templates, target, *render_parts(templates, target, lambda role: variables))


def render_with(templates: TemplateSet, message: str, *, tone: str | None, channel: str,
                context: dict[str, Any], locale: str | None = None, kind: str | None = None) -> Rendered:
    target = resolve(templates, message, tone=tone, channel=channel, locale=locale, kind=kind)
    return render_target(templates, target, context)


def render(message: str, *, tone: str | None, channel: str, context: dict[str, Any], locale: str = "en",
           kind: str | None = None) -> Rendered:
    """Renders ``message`` for ``channel`` (social: ``kind`` "post" or "dm").

    Falls back to the message's default tone and to the default locale when a variant is
    missing; ``Rendered.tone`` and ``.locale`` say what was used. Raises RenderError or
    LengthError (both TemplateProblem, a ValueError).
    """
    return render_with(get_template_set(), message, tone=tone, channel=channel, context=context,
                       locale=locale, kind=kind)
