"""Draw bench/compare.py's results: records per CPU second, per system and topology.

Runs in the bench's virtualenv (matplotlib is not a dependency of topicflow):

    .dev/bench-venv/bin/python bench/chart.py bench/results/compare.json bench/results/compare.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

SYSTEMS = ["topicflow", "java", "quix"]
LABELS = {"topicflow": "topicflow", "java": "Java Kafka Streams", "quix": "Quix Streams"}


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    results = json.loads(source.read_text())
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
    print(f"chart: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
