"""Omnichannel communication orchestrator: the domain core (no Prefect, no provider SDKs)."""

__version__ = "0.1.0"
