"""Channels served from our own database, registered like any provider's adapter.

The local outbox (``outbox.py``) stands in for a provider wherever none is configured; the
agents' phone queue (``phone.py``) turns a message into a call task. Both write the core's own
tables, so they live in the core and implement the adapter interface of ``channels/base.py``:
adapters in ``channels/`` wrap provider SDKs and never import the core.
"""
