"""
Draw the benchmarks page's chart from a committed results file.

    python docs/_benchmark_chart.py benchmarks/results/2026-11-28-default.json

writes docs/img/benchmarks.svg: time per task at N = 10,000 relative to the AnyIO
floor, per event loop, workload and implementation. Needs matplotlib
(`pip install --group bench`). An SVG, so the page and the sdist carry no binary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

OUT = Path(__file__).parent / "img" / "benchmarks.svg"
N = 10_000
SHOWN = [
    "JoinSet join_next",
    "anyio.as_completed",
    "aiometer.amap",
    "asyncer soonify",
    "aioresult channel",
    "native",  # asyncio TaskGroup+as_completed, or trio nursery+channel
]
LABELS = {
    "native": "native (asyncio TaskGroup / Trio nursery)",
    "JoinSet join_next": "JoinSet",
    "aioresult channel": "aioresult",
    "asyncer soonify": "asyncer",
}


def main(path: str) -> None:
    results = json.loads(Path(path).read_text(encoding="utf-8"))
    mpl.rcParams["svg.fonttype"] = "none"  # text stays text: small and searchable
    mpl.rcParams["svg.hashsalt"] = "anyio_joinset"  # the same file for the same data
    fig, axes = plt.subplots(1, len(results), figsize=(12, 4.2), sharey=True)
    workloads = ["W1", "W2", "W3"]
    width = 0.8 / len(SHOWN)
    for ax, (backend, res) in zip(axes, results.items(), strict=True):
        for j, name in enumerate(SHOWN):
            ratios = []
            for workload in workloads:
                per = res["time"][f"{workload}/{N}"]
                key = name if name != "native" else next(k for k in per if "+" in k)
                ratios.append(per[key] / per["floor"])
            xs = [i + (j - (len(SHOWN) - 1) / 2) * width for i in range(len(workloads))]
            ax.bar(xs, ratios, width, label=LABELS.get(name, name), color=f"C{j}")
        ax.axhline(1.0, color="black", linewidth=1)
        ax.set_xticks(range(len(workloads)), workloads)
        ax.set_title(backend)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("time per task / AnyIO floor\n(lower is better)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(SHOWN) // 2, frameon=False)
    fig.suptitle(f"Time per task at N = {N:,}, relative to a raw AnyIO task group + stream (1.0)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, metadata={"Date": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
