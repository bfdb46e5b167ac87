"""Prefect flows: thin compositions of the core (orchestrator/) and the adapters (channels/).

Every flow works in chunks (never one task per message), names its runs, masks personal data
in its logs and artifacts (``flows.common``), and leaves the guarantees (caps, exactly-once
sends) to the ledger.
"""
