"""The feedback loop web app: provider webhooks, SMS replies, unsubscribe, preference centre,
incident trigger. ``create_app()`` builds it; ``orchestrator serve`` runs it."""

from orchestrator.web.app import create_app

__all__ = ["create_app"]
