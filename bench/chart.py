"""Draw bench/compare.py's results (records per CPU second, per system and topology)
or bench/keys.py's (throughput and peak RSS against distinct keys), as the JSON holds.

Runs in the bench's virtualenv (matplotlib is not a dependency of topicflow):

    .dev/bench-venv/bin/python bench/chart.py bench/results/compare.json bench/results/compare.png
    .dev/bench-venv/bin/python bench/chart.py bench/results/keys.json bench/results/keys.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

SYSTEMS = ["topicflow", "java", "quix"]
LABELS = {"topicflow": "topicflow", "java": "Java Kafka Streams", "quix": "Quix Streams"}


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    results = json.loads(source.read_text())
    if all("keys" in r for r in results):
        keys_chart(results, target)
    else:
        compare_chart(results, target)
    print(f"chart: {target}")
    return 0


def compare_chart(results: list[dict[str, Any]], target: Path) -> None:
    topologies = list(dict.fromkeys(r["topology"] for r in results))
    systems = [s for s in SYSTEMS if any(r["system"] == s for r in results)]
    rate = {(r["topology"], r["system"]): r["records_per_cpu_s"] or 0 for r in results}
    width = 0.8 / len(systems)
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for i, system in enumerate(systems):
        xs = [t + (i - (len(systems) - 1) / 2) * width for t in range(len(topologies))]
        values = [rate.get((topology, system), 0) / 1000 for topology in topologies]
        bars = axes.bar(xs, values, width, label=LABELS[system])
        axes.bar_label(bars, fmt="%.0fk", fontsize=8)
    axes.set_xticks(range(len(topologies)), topologies)
    axes.set_ylabel("input records per CPU second (thousands)")
    inputs = ", ".join(
        f"{t}: {next(r['input_records'] for r in results if r['topology'] == t):,}"
        for t in topologies
    )
    axes.set_title(f"Same broker, same input ({inputs})", fontsize=9)
    axes.legend()
    figure.tight_layout()
    figure.savefig(target, dpi=120)


def keys_chart(results: list[dict[str, Any]], target: Path) -> None:
    """Two panels, log x: input records/s and peak RSS against distinct keys, per store."""
    stores = list(dict.fromkeys(r["store"] for r in results))
    figure, (speed, memory) = plt.subplots(1, 2, figsize=(10, 4.2))
    for store in stores:
        runs = sorted((r for r in results if r["store"] == store), key=lambda r: r["keys"])
        keys = [r["keys"] for r in runs]
        speed.plot(keys, [r["input_per_s"] / 1000 for r in runs], "o-", label=store)
        memory.plot(keys, [r["peak_rss_mb"] for r in runs], "o-", label=f"{store}: peak RSS")
        memory.plot(
            keys, [r["startup_rss_mb"] for r in runs], "o--", label=f"{store}: RSS at RUNNING"
        )
        if all("store_model_mb" in r for r in runs):
            memory.plot(
                keys,
                [r["startup_rss_mb"] + r["store_model_mb"] for r in runs],
                "x:",
                label=f"{store}: RSS at RUNNING + window store objects",
            )
    for axes in (speed, memory):
        axes.set_xscale("log")
        axes.set_xlabel("distinct keys")
        axes.set_ylim(bottom=0)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    speed.set_ylabel("input records/s (thousands)")
    memory.set_ylabel("MB")
    figure.suptitle(
        f"Aggregator on Kafka + PostgreSQL: {results[0]['input_records']:,} words "
        "drawn uniformly from K distinct words",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(target, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
