"""Run the conformance suite: `python -m tests.conformance [--seed N] [--cases N]`.

Prints, per topology and caching mode, how many cases gave identical output,
then a shrunk reproduction of the first failing cases. Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from tests.conformance.cases import generate
from tests.conformance.compare import explain, same, shrink
from tests.conformance.runner import run_kafka_streams, run_topicflow
from tests.conformance.topologies import TOPOLOGIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.conformance", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=200, help="cases per topology and mode")
    parser.add_argument(
        "--topology", action="append", choices=sorted(TOPOLOGIES), help="repeatable; default all"
    )
    parser.add_argument(
        "--show", type=int, default=2, help="shrunk reproductions shown per failing variant"
    )
    args = parser.parse_args(argv)
    names = args.topology or list(TOPOLOGIES)
    cases = generate(args.seed, args.cases, names)

    started = time.monotonic()
    kafka = run_kafka_streams(cases)
    kafka_s = time.monotonic() - started
    started = time.monotonic()
    topicflow = run_topicflow(cases)
    topicflow_s = time.monotonic() - started

    totals: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    failing: dict[str, list[int]] = collections.defaultdict(list)
    for index, (case, k, t) in enumerate(zip(cases, kafka, topicflow, strict=True)):
        variant = case["id"].rsplit("/", 1)[0]
        totals[variant][1] += 1
        if same(k, t):
            totals[variant][0] += 1
        else:
            failing[variant].append(index)

    identical = sum(ok for ok, _ in totals.values())
    for variant, (ok, total) in totals.items():
        mark = "  " if ok == total else "✗ "
        print(f"{mark}{variant:45} {ok:5}/{total}")
    print(
        f"\n{identical}/{len(cases)} cases identical ({100 * identical / len(cases):.1f}%), "
        f"seed {args.seed}; Kafka Streams {kafka_s:.1f} s, topicflow {topicflow_s:.1f} s"
    )
    if not failing:
        return 0

    chosen = [cases[i] for indices in failing.values() for i in indices[: args.show]]
    print(f"\nshrinking {len(chosen)} failing cases ...", flush=True)
    for case in shrink(chosen, run_kafka_streams, run_topicflow):
        [k] = run_kafka_streams([case])
        [t] = run_topicflow([case])
        print("\n" + explain(case, k, t))
    return 1


if __name__ == "__main__":
    sys.exit(main())
