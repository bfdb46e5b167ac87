"""``--plot FILE.png``: the funnel as bars, and the variants side by side when there are any.

matplotlib comes with the ``report`` extra (``pip install 'omnichannel-orchestrator[report]'``);
sending messages never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOTTED_STAGES = ("sent", "delivered", "opened", "machine_opened", "clicked", "replies", "unsubscribed",
                  "bounced", "spam_reports")


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Writes the report's chart to ``path`` (PNG) and returns it."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "plots need matplotlib: pip install 'omnichannel-orchestrator[report]'") from None
    variants = report["variants"]["rows"]
    fig, axes = plt.subplots(1, 2 if variants else 1, figsize=(13 if variants else 8, 5), squeeze=False)
    funnel_ax = axes[0][0]
    values = [report["funnel"][s] for s in PLOTTED_STAGES]
    bars = funnel_ax.barh([s.replace("_", " ") for s in PLOTTED_STAGES], values, color="#4472c4")
    funnel_ax.invert_yaxis()
    funnel_ax.bar_label(bars, padding=3)
    funnel_ax.set_xlabel("messages")
    funnel_ax.set_title(f"Funnel: {report['slice']['title']}"[:80])
    if variants:
        ax = axes[0][1]
        names = [str(v["variant"]) for v in variants]
        keys = [k for k, rate in variants[0]["rates"].items() if rate is not None]
        width = 0.8 / max(len(keys), 1)
        for i, key in enumerate(keys):
            rates = [v["rates"][key] for v in variants]
            values = [(r["value"] or 0) * 100 for r in rates]
            errors = [[(r["value"] - r["low"]) * 100 if r["value"] is not None else 0 for r in rates],
                      [(r["high"] - r["value"]) * 100 if r["value"] is not None else 0 for r in rates]]
            ax.bar([x + i * width for x in range(len(names))], values, width, yerr=errors, capsize=3,
                   label=key.replace("_", " "))
        ax.set_xticks([x + width * (len(keys) - 1) / 2 for x in range(len(names))], names)
        ax.set_ylabel("% with 95% interval")
        ax.set_title("Variants (conversions: of customers; the rest: of delivered)", fontsize=10)
        ax.legend()
    fig.tight_layout()
    target = Path(path)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
