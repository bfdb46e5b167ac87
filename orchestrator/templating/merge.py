"""Mail merge: render a message once for many recipients, their own values as substitutions.

A chunk of a campaign renders the same templates, tone, locale and facts for every customer;
only a few values differ (name, links, ids). ``render_many`` groups such recipients and renders
each group once with *slots* in place of those values, so the result is a skeleton with
substitution tags plus, per recipient, the tag -> value table. Expanding a skeleton is a few
string replacements, and a provider that merges on its side (SendGrid personalizations) gets
the skeleton once per request.

The merged result must be exactly what rendering one by one gives, so:

- a slot only prints: truthiness is allowed (recipients are grouped by the truthiness of their
  values, so ``{% if customer.first_name %}`` takes the same branch), any other use (compare,
  length, index, attribute, arithmetic) raises ``NotMergeable``;
- HTML parts get the escaped value, text parts the value as it is;
- the first recipient of every group is also rendered one by one and compared; a filter that
  changed a tag (``|upper``) shows up there.

Any of these failing renders that group one by one, as before: merging is only ever a shortcut.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from markupsafe import escape

from channels.base import Merge  # what a merging provider receives: part of the adapter interface
from orchestrator.templating.environment import TemplateSet, get_template_set
from orchestrator.templating.errors import TemplateProblem
from orchestrator.templating.render import (
    Rendered,
    Target,
    finish,
    render_parts,
    render_target,
    resolve,
    variables_for,
)

# The values that differ from one recipient to the next. Other context values (tier, locale,
# time zone, years as a customer, the facts) are part of the group key: templates may branch on
# them freely.
PERSONAL: dict[str, tuple[str, ...] | None] = {
    "customer": ("id", "name", "first_name", "customer_since", "x_handle"),
    "links": None,  # every link
    "message_id": (),
}
_PROCESS_TOKEN = secrets.token_hex(4)  # tags no template text or customer value can guess
# json.dumps(value, sort_keys=True, default=repr), whose encoder is built once instead of per message
_SHAPE_JSON = json.JSONEncoder(sort_keys=True, default=repr)
_groups = count(1)


class NotMergeable(Exception):
    """A template used a per-recipient value for more than printing it."""


class Slot:
    """Stands in for one recipient value while a group's skeleton is rendered."""

    __slots__ = ("_tag", "_truthy")

    def __init__(self, tag: str, truthy: bool) -> None:
        self._tag, self._truthy = tag, truthy

    def __str__(self) -> str:
        return self._tag

    def __html__(self) -> str:
        return self._tag

    def __bool__(self) -> bool:
        return self._truthy

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise NotMergeable("a per-recipient value is used for more than printing")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __len__ = __iter__ = __contains__ = __getitem__ = _refuse
    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = __rmod__ = __sub__ = __rsub__ = _refuse
    __int__ = __float__ = __index__ = __format__ = __call__ = _refuse
    __hash__ = object.__hash__


@dataclass(frozen=True)
class Item:
    """One recipient's request: what to render and with which context."""

    message: str
    tone: str | None
    channel: str
    locale: str | None
    kind: str | None
    context: Mapping[str, Any]


@dataclass
class Outcome:
    rendered: Rendered | None = None
    merge: Merge | None = None
    problem: TemplateProblem | None = None


@dataclass
class _Group:
    target: Target
    indexes: list[int] = field(default_factory=list)


def render_many(items: list[Item], templates: TemplateSet | None = None) -> list[Outcome]:
    """Renders every item (in order), merging recipients whose rendering differs only in values."""
    templates = templates or get_template_set()
    outcomes = [Outcome() for _ in items]
    groups: dict[Hashable, _Group] = {}
    read = templates.customer_fields_read
    encoded: dict[int, tuple[Any, str]] = {}  # the brand, one object for the whole batch, is encoded once
    targets: dict[tuple[str, str | None, str, str | None, str | None], Target | TemplateProblem] = {}
    for index, item in enumerate(items):
        wanted = (item.message, item.tone, item.channel, item.locale, item.kind)
        target = targets.get(wanted)
        if target is None:  # a batch has a few distinct targets: each is resolved once
            try:
                target = resolve(templates, item.message, tone=item.tone, channel=item.channel,
                                 locale=item.locale, kind=item.kind)
            except TemplateProblem as exc:
                target = exc
            targets[wanted] = target
        if isinstance(target, TemplateProblem):
            outcomes[index].problem = target
            continue
        key = (item.message, target.vkey, target.variant.tone, target.variant.locale,
               _shape(item.context, read, encoded))
        groups.setdefault(key, _Group(target)).indexes.append(index)
    for group in groups.values():
        members = [items[i] for i in group.indexes]
        merged = _merge(templates, group.target, members) if len(members) > 1 else None
        results = merged or [_one(templates, group.target, m) for m in members]
        for i, result in zip(group.indexes, results, strict=True):
            outcomes[i] = result
    return outcomes


def expand(skeleton: str, substitutions: Mapping[str, str]) -> str:
    for tag, value in substitutions.items():
        skeleton = skeleton.replace(tag, value)
    return skeleton


# --- internals -------------------------------------------------------------------------------


def _one(templates: TemplateSet, target: Target, item: Item) -> Outcome:
    try:
        return Outcome(render_target(templates, target, item.context))
    except TemplateProblem as exc:
        return Outcome(problem=exc)


def _merge(templates: TemplateSet, target: Target, members: list[Item]) -> list[Outcome] | None:
    """The group's outcomes through one skeleton, or None when the templates do not allow it."""
    paths = list(_personal_paths(members[0].context))
    group = f"-{_PROCESS_TOKEN}.{next(_groups)}"
    text_tags = {path: f"{group}.{n}.t-" for n, path in enumerate(paths)}
    html_tags = {path: f"{group}.{n}.h-" for n, path in enumerate(paths)}
    first = members[0].context
    slotted = {
        "html": variables_for(target, _with_slots(first, html_tags)),
        "text": variables_for(target, _with_slots(first, text_tags)),
    }
    try:
        subject, text, html = render_parts(templates, target, lambda role: slotted["html" if role == "html"
                                                                                else "text"])
    except (NotMergeable, TemplateProblem):
        return None
    used = [(path, tag, False) for path, tag in text_tags.items() if tag in text or tag in (subject or "")]
    used += [(path, tag, True) for path, tag in html_tags.items() if html and tag in html]
    key = group.strip("-")
    outcomes = []
    for item in members:
        substitutions = {tag: _printed(_lookup(item.context, path), escaped)
                         for path, tag, escaped in used}
        try:
            rendered = finish(templates, target, expand(subject, substitutions) if subject else None,
                              expand(text, substitutions), expand(html, substitutions) if html else None)
        except TemplateProblem as exc:  # over a length limit with this recipient's values
            outcomes.append(Outcome(problem=exc))
            continue
        outcomes.append(Outcome(rendered, Merge(key, text, html, substitutions)))
    check = _one(templates, target, members[0])
    if check.rendered is None or outcomes[0].rendered != check.rendered:
        return None  # a filter or test changed a tag: render this group one by one
    return outcomes


def _personal_paths(context: Mapping[str, Any]) -> Iterator[tuple[str, ...]]:
    for top, keys in PERSONAL.items():
        if top not in context:
            continue
        value = context[top]
        if keys == ():
            yield (top,)
        elif isinstance(value, Mapping):
            yield from ((top, key) for key in (value if keys is None else keys) if key in value)


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = context
    for key in path:
        value = value[key]
    return value


def _with_slots(context: Mapping[str, Any], tags: Mapping[tuple[str, ...], str]) -> dict[str, Any]:
    copy: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in context.items()}
    for path, tag in tags.items():
        holder = copy
        for key in path[:-1]:
            holder = holder[key]
        holder[path[-1]] = Slot(tag, bool(holder[path[-1]]))
    return copy


def _printed(value: Any, escaped: bool) -> str:
    """The value as Jinja prints it: escaped in HTML, as is in text."""
    return str(escape(value)) if escaped else str(value)


def _shape(context: Mapping[str, Any], read: frozenset[str] | None = None,
           encoded: dict[int, tuple[Any, str]] | None = None) -> Hashable:
    """Everything a template may branch on: the context with personal values reduced to truthiness.
    ``read``: the customer fields the templates read (None: any), the only ones that can matter.
    ``encoded``: values already encoded in this batch, by identity (the brand every context shares).

    Called for every message of a batch, so it walks the context once, without helpers."""
    shape: list[tuple[str, Hashable]] = []
    for key in sorted(context):
        value = context[key]
        if key not in PERSONAL:
            shape.append((key, _encoded(value, encoded)))
            continue
        personal = PERSONAL[key]
        if personal == ():
            shape.append((key, bool(value)))
        elif isinstance(value, Mapping):  # per field: truthiness if personal, else the value
            only = read if key == "customer" else None
            shape.append((key, tuple(
                (name, bool(field) if personal is None or name in personal else repr(field))
                for name, field in sorted(value.items()) if only is None or name in only)))
    return tuple(shape)


def _encoded(value: Any, seen: dict[int, tuple[Any, str]] | None) -> Hashable:
    if value is None or isinstance(value, (str, int, float)):  # bool is an int: the type tells them apart
        return value.__class__, value
    hit = seen.get(id(value)) if seen is not None else None
    if hit is not None and hit[0] is value:
        return hit[1]
    text = _SHAPE_JSON.encode(value)
    if seen is not None:
        seen[id(value)] = (value, text)  # the value is kept: its id cannot be reused meanwhile
    return text
