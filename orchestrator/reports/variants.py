"""Experiment variants side by side, from the breakdown by ``variant``.

Until the ledger records a variant per message there is nothing to compare, and the report
says so instead of inventing a comparison.
"""

from __future__ import annotations

from typing import Any

from orchestrator.reports.rates import ratio

NO_VARIANTS = "No experiment variants in this slice: the ledger records no variant for its messages."
COMPARED = ("delivered", "clicked", "unsubscribed", "replies")


def compare_variants(by_variant: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Per variant, the compared counts and their rates over delivered."""
    rows = [r for r in by_variant or [] if r["value"] != "(none)"]
    if not rows:
        return {"rows": [], "winner": None, "note": NO_VARIANTS}
    table = [{"variant": r["value"], **{k: r["counts"][k] for k in COMPARED},
              **{f"{k}_rate": ratio(r["counts"][k], r["counts"]["delivered"]) for k in COMPARED[1:]}}
             for r in rows]
    return {"rows": table, "winner": None,
            "note": "Counts per variant; intervals and a winner need the experiment statistics."}
