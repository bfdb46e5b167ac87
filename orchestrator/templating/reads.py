"""Which ``customer`` fields the templates read, found in their syntax trees.

Mail merge groups recipients by every value a template may branch on; a field no template reads
cannot change a rendering, so it need not split a group (the time zone, say). The answer is
conservative: ``None`` (any field may matter) as soon as ``customer`` is used in a way this
cannot follow: filtered, assigned, looked up by a variable, or passed to anything but a macro
of the catalog whose parameter is itself only read field by field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from jinja2 import Environment, TemplateSyntaxError, nodes

VARIABLE = "customer"


def customer_fields_read(env: Environment, sources: Mapping[str, str]) -> frozenset[str] | None:
    try:
        trees = [env.parse(source, name) for name, source in sources.items()]
    except TemplateSyntaxError:
        return None  # rendering reports it; nothing can be assumed here
    macros: dict[str, list[nodes.Macro]] = {}
    for tree in trees:
        for macro in tree.find_all(nodes.Macro):
            macros.setdefault(macro.name, []).append(macro)
    read: set[str] = set()
    for tree in trees:
        found = _reads(VARIABLE, [tree], macros)
        if found is None:
            return None
        read |= found
    return frozenset(read)


def _reads(name: str, scope: Iterable[nodes.Node], macros: Mapping[str, list[nodes.Macro]],
           depth: int = 0) -> set[str] | None:
    """The fields read on the variable ``name`` within ``scope``, or None if it escapes."""
    uses = [n for root in scope for n in root.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
    if not uses:
        return set()
    pending = {id(n) for n in uses}
    read: set[str] = set()
    for node in (n for root in scope for n in root.find_all((nodes.Getattr, nodes.Getitem))):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        base = node.node
        if id(base) in pending:
            key = node.attr if isinstance(node, nodes.Getattr) else node.arg
            field = key if isinstance(key, str) else getattr(key, "value", None)  # a constant index
            if not isinstance(field, str):
                return None
            read.add(field)
            pending.discard(id(base))
    for call in (n for root in scope for n in root.find_all(nodes.Call)):
        passed: list[tuple[int | None, str | None]] = [
            (i, None) for i, arg in enumerate(call.args) if id(arg) in pending]
        passed += [(None, kw.key) for kw in call.kwargs if id(kw.value) in pending]
        if not passed:
            continue
        callee = call.node.attr if isinstance(call.node, nodes.Getattr) else getattr(call.node, "name", None)
        targets = macros.get(callee or "", [])
        if not targets or depth > 4:
            return None
        for macro in targets:
            params = [p.name for p in macro.args]
            for index, keyword in passed:
                param = params[index] if index is not None and index < len(params) else keyword
                if param is None or param not in params:
                    return None
                inner = _reads(param, macro.body, macros, depth + 1)
                if inner is None:
                    return None
                read |= inner
        for arg in [*call.args, *(kw.value for kw in call.kwargs)]:
            pending.discard(id(arg))
    return None if pending else read
