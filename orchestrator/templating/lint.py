"""The tone guard: render every message x tone x channel x locale with sample data and check
that each tone keeps its promise (tone_rules.yaml) and each message states the same facts on
every channel. Every finding names the template, tone, channel, rule and the offending text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import textstat
from jinja2 import nodes
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from orchestrator.templating.catalog import MessageInfo
from orchestrator.templating.context import build_context
from orchestrator.templating.environment import TemplateSet, get_template_set
from orchestrator.templating.errors import LengthError, TemplateProblem
from orchestrator.templating.render import Rendered, render_with
from orchestrator.templating.rules import MessageToneRule, ToneRule, ToneRules

URL_RE = re.compile(r"https?://\S+")
# Shouting: a run of two or more capitals standing alone (not part of a code like CASE-123 or SPRING20).
CAPS_RE = re.compile(r"(?<![\w-])[A-Z]{2,}(?![\w-])")
SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]*")
OPT_OUT_RE = re.compile(r"\breply stop\b", re.IGNORECASE)
EXCERPT = 160
# The email footer (after a "--" line) is legal boilerplate checked by the compliance rule,
# not prose in the message's tone.
FOOTER_RE = re.compile(r"\n--\s*\n.*", re.DOTALL)


@dataclass(frozen=True)
class Finding:
    message: str
    tone: str
    channel: str  # variant: email, sms, social:post, social:dm, phone
    locale: str
    rule: str
    detail: str
    template: str = ""
    text: str = ""  # the offending text

    def describe(self) -> str:
        where = f"{self.message} / {self.tone} / {self.channel} / {self.locale}"
        line = f"{where}: [{self.rule}] {self.detail}"
        if self.template:
            line += f" ({self.template})"
        if self.text:
            line += f'\n    "{self.text}"'
        return line


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    rendered: int = 0  # message x tone x channel x locale combinations checked

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rendered": self.rendered, "findings": [asdict(f) for f in self.findings]}


@lru_cache(maxsize=1)
def _vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT else text[: EXCERPT - 1] + "…"


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_RE.findall(text) if s.strip()]


def referenced_facts(templates: TemplateSet, name: str) -> set[str]:
    """Names used as ``data.NAME`` or ``data["NAME"]`` in one template's own source."""
    tree = templates.env.parse(templates.catalog.sources[name])
    found = {n.attr for n in tree.find_all(nodes.Getattr)
             if isinstance(n.node, nodes.Name) and n.node.name == "data"}
    found |= {n.arg.value for n in tree.find_all(nodes.Getitem)
              if isinstance(n.node, nodes.Name) and n.node.name == "data" and isinstance(n.arg, nodes.Const)}
    return found


def check_same_facts(templates: TemplateSet, info: MessageInfo) -> Iterator[Finding]:
    """Every variant file that carries the body must state all of the message's facts."""
    facts = set(info.required_variables)
    parts = templates.catalog.parts
    subjects = {files["subject"] for files in parts.values() if "subject" in files}
    for (message, tone, key, locale), name in sorted(templates.catalog.variants.items()):
        if message != info.name or key in subjects:
            continue
        missing = sorted(facts - referenced_facts(templates, name))
        if missing:
            channel = next((v for v, files in parts.items() if key in files.values()), key)
            facts_list = ", ".join(info.required_variables)
            yield Finding(info.name, tone, channel, locale, "same_facts",
                          f"does not state {', '.join(missing)} (facts: {facts_list})", name)


def check_variants_exist(templates: TemplateSet, info: MessageInfo) -> Iterator[Finding]:
    catalog = templates.catalog
    for vkey in info.variants:
        missing = [key for key in catalog.parts[vkey].values()
                   if (info.name, info.default_tone, key, catalog.default_locale) not in catalog.variants]
        if missing:
            what = "a phone task needs a call script" if vkey == "phone" else "declared in message.yaml"
            yield Finding(info.name, info.default_tone, vkey, catalog.default_locale, "missing_variant",
                          f"no {', '.join(missing)} in the default tone ({what})",
                          f"messages/{info.name}/{info.default_tone}/")


def _message_rules(rules: ToneRules, message: str, tone: str, vkey: str) -> list[MessageToneRule]:
    scoped = (rules.messages.get(message, {}).get(scope) for scope in ("*", tone))
    return [extra for extra in scoped if extra and (extra.channels is None or vkey in extra.channels)]


def _required_elements(rules: ToneRules, message: str, tone: str, vkey: str) -> dict[str, str]:
    required = dict(rules.tones[tone].required)
    for extra in _message_rules(rules, message, tone, vkey):
        required.update(extra.required)
    return required


Problem = tuple[str, str, str]  # (rule, detail, offending text)


def check_tone(rendered: Rendered, vkey: str, rule: ToneRule, rules: ToneRules) -> Iterator[Problem]:
    """(rule, detail, offending text) for every promise the rendered text breaks."""
    full = FOOTER_RE.sub("", f"{rendered.subject}\n{rendered.text}" if rendered.subject else rendered.text)
    prose = URL_RE.sub("", full)
    scored = rendered.locale.replace("_", "-").split("-")[0] in rules.scored_locales
    if scored and rule.max_grade is not None:
        grade = float(getattr(textstat, rules.readability_metric)(prose))
        if grade > rule.max_grade:
            longest = max(_sentences(prose), key=len, default=prose)
            yield ("readability", f"grade {grade:.1f} > max {rule.max_grade:g} ({rules.readability_metric})",
                   longest)
    if scored:
        low, high = rule.sentiment
        compound = _vader().polarity_scores(prose)["compound"]
        if not low <= compound <= high:
            pick = min if compound < low else max
            worst = pick(_sentences(prose), key=lambda s: _vader().polarity_scores(s)["compound"],
                         default=prose)
            yield ("sentiment", f"VADER compound {compound:+.2f} outside [{low:+.2f}, {high:+.2f}]", worst)
    if rule.max_exclamations is not None:
        count = prose.count("!")
        if count > rule.max_exclamations:
            shouted = " … ".join(s for s in _sentences(prose) if "!" in s)
            yield ("exclamations", f"{count} exclamation marks, max {rule.max_exclamations}", shouted)
    if rule.max_caps_words is not None:
        allowed = set(rules.caps_allowlist)
        caps = [w for w in CAPS_RE.findall(prose) if w not in allowed]
        if len(caps) > rule.max_caps_words:
            yield ("all_caps", f"{len(caps)} ALL-CAPS words, max {rule.max_caps_words}", " ".join(caps))
    lowered = full.lower()
    for phrase in rule.banned_phrases:
        at = lowered.find(phrase.lower())
        if at >= 0:
            context = full[max(0, at - 40): at + len(phrase) + 40]
            yield ("banned_phrase", f"uses banned phrase {phrase!r}", context)


def check_required(rendered: Rendered, vkey: str, rules: ToneRules) -> Iterator[Problem]:
    """The elements the tone and the message require, and the phrases the message may not use."""
    full = f"{rendered.subject}\n{rendered.text}" if rendered.subject else rendered.text
    for name, pattern in _required_elements(rules, rendered.message, rendered.tone, vkey).items():
        if not re.search(pattern, full, re.IGNORECASE):
            yield ("required_element", f"missing {name} (pattern {pattern!r})", full)
    lowered = full.lower()
    for extra in _message_rules(rules, rendered.message, rendered.tone, vkey):
        for phrase in extra.banned_phrases:
            at = lowered.find(phrase.lower())
            if at >= 0:
                yield ("banned_phrase", f"uses banned phrase {phrase!r} (this message)",
                       full[max(0, at - 40): at + len(phrase) + 40])


def check_compliance(rendered: Rendered, vkey: str, context: dict[str, Any]) -> Iterator[Problem]:
    """Marketing email carries unsubscribe and preference links and a postal address; SMS says STOP."""
    if vkey == "email":
        needed = {"unsubscribe link": context["links"].get("unsubscribe_url", "(unsubscribe_url)"),
                  "preferences link": context["links"].get("preferences_url", "(preferences_url)"),
                  "postal address": context["brand"]["postal_address"]}
        for part, body in (("text", rendered.text), ("html", rendered.html or "")):
            missing = [name for name, value in needed.items() if value not in body]
            if missing:
                yield ("compliance", f"marketing email {part} lacks {', '.join(missing)}", body[-EXCERPT:])
    elif vkey == "sms" and not OPT_OUT_RE.search(rendered.text):
        yield ("compliance", 'marketing SMS lacks "Reply STOP to opt out"', rendered.text)


def lint_templates(templates: TemplateSet | None = None) -> LintReport:
    templates = templates or get_template_set()
    catalog = templates.catalog
    report = LintReport()
    sample_customer = catalog.sample_data.get("customer") or {}
    sample_facts = catalog.sample_data.get("messages") or {}
    for name in sorted(catalog.messages):
        info = catalog.messages[name]
        report.findings += check_same_facts(templates, info)
        missing = list(check_variants_exist(templates, info))
        report.findings += missing
        variants = [v for v in info.variants if v not in {f.channel for f in missing}]
        if name not in sample_facts:
            report.findings.append(Finding(name, "*", "*", "*", "sample_data",
                                           "no facts for this message", "sample_data.yaml"))
            continue
        context = build_context(sample_customer, sample_facts[name], topic=info.topic)
        # A public post is rendered once for everyone: no customer data may appear in it.
        broadcast = build_context(None, sample_facts[name], topic=info.topic)
        seen: set[tuple[str, str, str]] = set()
        for tone in catalog.rules.tones:
            for vkey in variants:
                for locale in info.locales:
                    audience = broadcast if vkey == "social:post" else context
                    report.findings += _lint_one(templates, info, tone, vkey, locale, audience, seen, report)
    return report


def _lint_one(templates: TemplateSet, info: MessageInfo, tone: str, vkey: str, locale: str,
              context: dict[str, Any], seen: set[tuple[str, str, str]], report: LintReport) -> list[Finding]:
    channel, _, kind = vkey.partition(":")
    try:
        rendered = render_with(templates, info.name, tone=tone, channel=channel, context=context,
                               locale=locale, kind=kind or None)
    except TemplateProblem as exc:
        rule = "length" if isinstance(exc, LengthError) else "render"
        try:
            variant = templates.variant(info.name, tone, vkey, locale)
            key = (variant.tone, vkey, variant.locale)
            template = variant.names["text"]
        except TemplateProblem:
            key, template = (tone, vkey, locale), f"messages/{info.name}/{tone}/"
        if key in seen:
            return []
        seen.add(key)
        detail = str(exc)
        if vkey == "social:post" and "missing variable" in detail:
            detail += " (a public post is rendered without customer data or links)"
        return [Finding(info.name, key[0], vkey, key[2], rule, detail, template)]
    key = (rendered.tone, vkey, rendered.locale)
    if key in seen:  # fell back to a variant already checked
        return []
    seen.add(key)
    report.rendered += 1
    template = templates.variant(info.name, tone, vkey, locale).names["text"]
    rules = templates.catalog.rules
    problems = list(check_tone(rendered, vkey, rules.tones[rendered.tone], rules))
    problems += check_required(rendered, vkey, rules)
    if info.marketing:
        problems += check_compliance(rendered, vkey, context)
    return [Finding(info.name, rendered.tone, vkey, rendered.locale, rule, detail, template, _excerpt(text))
            for rule, detail, text in problems]
