"""The installed channels: every ``ChannelSpec`` declared by an adapter in the
``orchestrator.channels`` entry-point group.

This is the one place the core learns which channels exist. Adapters that serve a channel
another adapter declared (the outbox serves any) declare none. Two adapters declaring
different specs under one name is a configuration error, as is an adapter that cannot load.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from channels.base import ChannelSpec, ConfigurationError

GROUP = "orchestrator.channels"
# Listed first, in this order, wherever channels are shown; plug-in channels follow by name.
_BUILT_IN_ORDER = ("email", "sms", "social", "phone")


def adapter_entry_points() -> dict[str, EntryPoint]:
    return _entry_points_on(tuple(sys.path))


@lru_cache(maxsize=8)
def _entry_points_on(path: tuple[str, ...]) -> dict[str, EntryPoint]:
    # Reading every installed distribution's metadata costs milliseconds and the channel set is
    # asked for per chunk; a package added to the path shows up as a new key.
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def installed_channels() -> dict[str, ChannelSpec]:
    """Channel name -> spec, built-in channels first."""
    return _specs(tuple(sorted((ep.name, ep.value) for ep in adapter_entry_points().values())))


@lru_cache(maxsize=8)
def _specs(points: tuple[tuple[str, str], ...]) -> dict[str, ChannelSpec]:
    eps = adapter_entry_points()
    found: dict[str, tuple[ChannelSpec, str]] = {}
    for name, _value in points:
        try:
            adapter = eps[name].load()
        except Exception as exc:  # a broken plug-in must say so, not vanish from the channel set
            raise ConfigurationError(f"channel adapter {name!r} cannot be loaded: {exc}") from exc
        spec = getattr(adapter, "channel_spec", None)
        if spec is None:
            continue
        if not isinstance(spec, ChannelSpec):
            raise ConfigurationError(f"channel adapter {name!r}: channel_spec is not a ChannelSpec")
        if spec.name in found and found[spec.name][0] != spec:
            raise ConfigurationError(
                f"adapters {found[spec.name][1]!r} and {name!r} declare channel {spec.name!r} differently"
            )
        found.setdefault(spec.name, (spec, name))
    order = sorted(found, key=lambda ch: (ch not in _BUILT_IN_ORDER,
                                          _BUILT_IN_ORDER.index(ch) if ch in _BUILT_IN_ORDER else 0, ch))
    return {ch: found[ch][0] for ch in order}


def channel_names() -> tuple[str, ...]:
    return tuple(installed_channels())


def channel_spec(name: str) -> ChannelSpec:
    """The spec of an installed channel; an unknown name is an error naming the installed ones."""
    specs = installed_channels()
    try:
        return specs[name]
    except KeyError:
        raise UnknownChannel(name, tuple(specs)) from None


def declaring_adapter(channel: str) -> str | None:
    """The entry-point name of the adapter that declares ``channel`` (its default provider)."""
    spec = installed_channels().get(channel)
    if spec is None:
        return None
    for name, ep in sorted(adapter_entry_points().items()):
        if getattr(ep.load(), "channel_spec", None) == spec:
            return name
    return None


class UnknownChannel(ValueError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        self.name, self.known = name, known
        super().__init__(f"unknown channel {name!r} (installed channels: {', '.join(known)})")
