"""The one sandboxed Jinja2 environment per templates directory, and template resolution.

Marketing staff write templates, so they run in Jinja's immutable sandbox: no access to
private or dunder attributes, no mutation of the data passed in. StrictUndefined turns a
missing variable into an error instead of an empty hole; HTML templates are autoescaped, so
customer-provided values always render as text. Compiled templates are cached for good.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from jinja2 import DictLoader, StrictUndefined, Template, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from orchestrator.settings import get_settings
from orchestrator.templating.catalog import Catalog, _cached_catalog
from orchestrator.templating.errors import RenderError
from orchestrator.templating.reads import customer_fields_read

# The locale of the variant being rendered, so partials resolve to the same language.
_rendering_locale: ContextVar[str | None] = ContextVar("rendering_locale", default=None)


class BrandEnvironment(ImmutableSandboxedEnvironment):
    """Includes, imports and extends pick the rendering locale's partial (``x.es.txt``) if it exists."""

    def __init__(self, catalog: Catalog) -> None:
        super().__init__(
            loader=DictLoader(catalog.sources),
            undefined=StrictUndefined,
            autoescape=lambda name: bool(name and name.endswith(".html")),
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
            cache_size=-1,  # never evict: every template is compiled once per process
        )
        self.catalog = catalog

    def getattr(self, obj: object, attribute: str) -> object:
        # Fast path for the plain dicts templates read (data.x, customer.x): the sandbox would try
        # the attribute first and pay for an AttributeError on every lookup. A dict item is data,
        # never an attribute, so this grants nothing the sandbox would refuse.
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def join_path(self, template: str, parent: str) -> str:
        if parent.endswith(".html") and not template.endswith(".html"):
            # Text templates are not autoescaped, and Jinja marks a macro's output safe when it is
            # called from an autoescaping template: text pulled into HTML would go out unescaped.
            raise SecurityError(f"{parent} may only use HTML templates, not {template} (it is not escaped)")
        locale = _rendering_locale.get()
        stem, dot, ext = template.rpartition(".")
        if locale and dot and locale != self.catalog.default_locale:
            for candidate in locale_chain(locale, self.catalog.default_locale)[:-1]:
                localised = f"{stem}.{candidate}.{ext}"
                if localised in self.catalog.sources:
                    return localised
        return template


@dataclass(frozen=True)
class Variant:
    """The resolved templates of one message on one channel, after tone and locale fallback."""

    tone: str
    locale: str
    parts: Mapping[str, Template]  # role (subject, html, text) -> compiled template
    names: Mapping[str, str]  # role -> template name, for error messages


def locale_chain(locale: str | None, default_locale: str) -> list[str]:
    """'es-MX' -> ['es-MX', 'es', 'en']: the exact locale, its language, then the default."""
    chain: list[str] = []
    if locale:
        chain.append(locale)
        language = locale.replace("_", "-").split("-", 1)[0]
        chain.append(language)
    chain.append(default_locale)
    return list(dict.fromkeys(chain))


class TemplateSet:
    """A catalog with its environment and a memo of resolved variants."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.env = BrandEnvironment(catalog)
        self._variants: dict[tuple[str, str, str, str], Variant] = {}

    def compile(self, name: str) -> Template:
        try:
            return self.env.get_template(name)
        except TemplateSyntaxError as exc:
            raise RenderError(f"{exc.name or name}, line {exc.lineno}: {exc.message}") from None
        except TemplateError as exc:
            raise RenderError(f"{name}: {exc}") from None

    def variant(self, message: str, tone: str, vkey: str, locale: str) -> Variant:
        memo_key = (message, tone, vkey, locale)
        found = self._variants.get(memo_key)
        if found is None:
            found = self._variants[memo_key] = self._resolve(message, tone, vkey, locale)
        return found

    def _resolve(self, message: str, tone: str, vkey: str, locale: str) -> Variant:
        info = self.catalog.info(message)
        files = self.catalog.parts[vkey]
        for loc in locale_chain(locale, self.catalog.default_locale):
            for candidate_tone in dict.fromkeys((tone, info.default_tone)):
                names = {role: self.catalog.variants.get((message, candidate_tone, key, loc))
                         for role, key in files.items()}
                if all(names.values()):
                    resolved = {role: str(name) for role, name in names.items()}
                    parts = {role: self.compile(name) for role, name in resolved.items()}
                    return Variant(candidate_tone, loc, parts, resolved)
        wanted = " + ".join(files.values())
        tones = repr(tone) if tone == info.default_tone else f"{tone!r} or default tone {info.default_tone!r}"
        raise RenderError(f"{message}: no template for {vkey} ({wanted}) in tone {tones}")

    @cached_property
    def customer_fields_read(self) -> frozenset[str] | None:
        """The ``customer`` fields any template of the catalog reads (None: it cannot be told)."""
        return customer_fields_read(self.env, self.catalog.sources)

    def render_part(self, variant: Variant, role: str, variables: Mapping[str, object]) -> str:
        token = _rendering_locale.set(variant.locale)
        try:
            return variant.parts[role].render(variables)
        except SecurityError as exc:
            raise RenderError(f"{variant.names[role]}: refused by the sandbox: {exc}") from None
        except UndefinedError as exc:
            raise RenderError(f"{variant.names[role]}: missing variable: {exc.message}") from None
        except TemplateSyntaxError as exc:
            raise RenderError(f"{exc.name}, line {exc.lineno}: {exc.message}") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            raise RenderError(f"{variant.names[role]}: {type(exc).__name__}: {exc}") from None
        finally:
            _rendering_locale.reset(token)


@lru_cache(maxsize=8)
def _template_set(root: Path, default_locale: str) -> TemplateSet:
    return TemplateSet(_cached_catalog(root, default_locale))


def get_template_set() -> TemplateSet:
    settings = get_settings()
    return _template_set(settings.templates_dir, settings.default_locale)


def reload_templates() -> None:
    """Forget loaded templates (after editing files in a running process, or in tests)."""
    _template_set.cache_clear()
    _cached_catalog.cache_clear()
