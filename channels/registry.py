"""Which adapter serves which channel: adapters are found by name through entry points.

A third party adds a channel (WhatsApp, push, Slack) with a package of its own that declares
an entry point in the ``orchestrator.channels`` group; nothing in the core changes. Which
adapter serves a channel is configuration (``ORCH_CHANNEL_ADAPTERS='{"email": "sendgrid"}'``);
without it, a channel uses its provider when the provider's credentials are set and the local
outbox otherwise.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint
from typing import Any

from channels.base import ChannelAdapter, ConfigurationError
from channels.channel_set import GROUP, adapter_entry_points, declaring_adapter
from channels.settings import AdapterChoice, current

__all__ = ["GROUP", "adapter_class", "adapter_for", "available_adapters", "load_adapter"]

OUTBOX = "outbox"


def _entry_points() -> dict[str, EntryPoint]:
    return adapter_entry_points()


def available_adapters() -> dict[str, str]:
    """Registered adapter names and where they come from (``module:attribute``)."""
    return {name: ep.value for name, ep in sorted(_entry_points().items())}


def adapter_class(name: str) -> Any:
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigurationError(f"no channel adapter named {name!r}; known adapters: {known}")
    return eps[name].load()


def load_adapter(name: str, **kwargs: Any) -> ChannelAdapter:
    """The adapter registered as ``name``, constructed with ``kwargs`` (overrides for tests)."""
    return adapter_class(name)(**kwargs)


def adapter_for(channel: str, settings: object | None = None) -> ChannelAdapter:
    """The adapter that serves ``channel`` under the current configuration. ``settings`` (the
    core's) goes to adapters that take a ``settings`` argument (the local outbox)."""
    name = current(AdapterChoice).channel_adapters.get(channel)
    if name is None:
        provider = declaring_adapter(channel)  # the adapter that declares the channel
        name = OUTBOX
        if provider is not None:
            cls = adapter_class(provider)
            configured = getattr(cls, "configured", None)
            if configured is None or configured():
                name = provider
    cls = adapter_class(name)
    given = {"settings": settings} if settings is not None else {}
    adapter = cls(**_accepted_kwargs(cls, channel=channel, **given))
    if getattr(adapter, "channel", channel) != channel:
        adapter.close()
        raise ConfigurationError(f"adapter {name!r} serves {adapter.channel!r}, not {channel!r}")
    return adapter


def _accepted_kwargs(factory: Any, **candidates: Any) -> dict[str, Any]:
    """Passes ``channel`` and ``settings`` only to adapters that take them (e.g. the outbox,
    which serves any channel), so a third-party adapter needs neither."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return candidates
    return {k: v for k, v in candidates.items() if k in params}
