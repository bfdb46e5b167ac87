"""Dispatch: the ledger's due messages through channel adapters, never twice.

Named steps, one module each (imported directly, no re-exports here): ``run`` (the loop:
claim, then compose, send and record each claimed set), ``compose``, ``send``, ``record``,
and ``report`` (what a run did).
"""
