"""PNG plots of a benchmark run: ``python -m bench.plot [bench/results.json]`` (``bench.run`` calls it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def make_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Throughput against N (per backend) and against workers, and peak RSS against N."""
    made: list[Path] = []
    if results["campaign"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for backend in sorted({r["backend"] for r in results["campaign"]}):
            runs = sorted((r for r in results["campaign"] if r["backend"] == backend), key=lambda r: r["n"])
            ax.plot([r["n"] for r in runs], [r["customers_per_s"] for r in runs], "o-",
                    label=f"campaign, {backend}")
        bare = results.get("baseline_b")
        if bare:
            ax.axhline(1000 / bare["ms_per_message"], color="grey", linestyle="--", label="bare SDK loop")
        obvious = results.get("baseline_a")
        if obvious:
            ax.axhline(1000 / obvious["ms_per_message"], color="red", linestyle=":",
                       label="one Prefect task per message")
        ax.set(xscale="log", xlabel="customers (N)", ylabel="customers per second",
               title=f"Campaign throughput ({results['latency_ms']:g} ms fake provider latency)")
        ax.set_ylim(bottom=0)
        ax.legend()
        made.append(out / "throughput_vs_n.png")
        _save(fig, made[-1])
    if results["scaleout"]:
        runs = results["scaleout"]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([r["workers"] for r in runs], [r["customers_per_s"] for r in runs], "o-",
                label="two concurrent campaigns, PostgreSQL")
        ax.set(xlabel="Dask worker processes", ylabel="customers per second",
               xticks=[r["workers"] for r in runs],
               title=f"Scale-out on {results['machine']['cores']} cores (caps checked at the fakes)")
        ax.set_ylim(bottom=0)
        ax.legend()
        made.append(out / "throughput_vs_workers.png")
        _save(fig, made[-1])
    if results["memory"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        runs = sorted(results["memory"], key=lambda r: r["n"])
        ax.plot([r["n"] for r in runs], [r["peak_rss_mb"] for r in runs], "o-",
                label="plan (decide only), SQLite")
        for backend in sorted({r["backend"] for r in results["campaign"]}):
            camp = sorted((r for r in results["campaign"] if r["backend"] == backend), key=lambda r: r["n"])
            ax.plot([r["n"] for r in camp], [r["peak_rss_mb"] for r in camp], "s--",
                    label=f"campaign, {backend}")
        ax.set(xscale="log", xlabel="customers (N)", ylabel="peak RSS (MB)", title="Memory as N grows")
        ax.set_ylim(bottom=0)
        ax.legend()
        made.append(out / "memory_vs_n.png")
        _save(fig, made[-1])
    return made


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results.json"))
    for path in make_plots(json.loads(source.read_text()), source.parent):
        print(path)
