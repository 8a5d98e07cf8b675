"""Set topicflow's results beside Kafka Streams' and explain each difference.

A failing case is shrunk first (steps dropped one at a time while the
difference remains, both sides rerun in batches), then shown as a minimal
reproduction: the input steps, and the first record where the outputs part.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conformance.cases import Case
from tests.conformance.runner import Result

Runner = Callable[[list[Case]], list[Result]]


def same(kafka: Result, topicflow: Result) -> bool:
    """Identical outputs, and an error on both sides or on neither."""
    return kafka["outputs"] == topicflow["outputs"] and (kafka["error"] is None) == (
        topicflow["error"] is None
    )


def shrink(cases: list[Case], kafka: Runner, topicflow: Runner, rounds: int = 40) -> list[Case]:
    """Each case reduced to fewer steps that still differ (greedy delta debugging).

    All candidates of all cases in a round go to each side in one batch: the
    JVM starts once a round, not once a candidate.
    """
    current = list(cases)
    for _ in range(rounds):
        candidates: list[tuple[int, Case]] = []
        for index, case in enumerate(current):
            steps = case["steps"]
            for drop in range(len(steps)):
                smaller = dict(case, steps=steps[:drop] + steps[drop + 1 :])
                smaller["id"] = f"{case['id']}~{drop}"
                candidates.append((index, smaller))
        if not candidates:
            break
        batch = [c for _, c in candidates]
        differing = {
            k["id"] for k, t in zip(kafka(batch), topicflow(batch), strict=True) if not same(k, t)
        }
        progressed = False
        taken: set[int] = set()
        for index, candidate in candidates:
            if index not in taken and candidate["id"] in differing:
                current[index] = dict(candidate, id=cases[index]["id"])
                taken.add(index)
                progressed = True
        if not progressed:
            break
    return current


def _record(record: list[Any] | None) -> str:
    if record is None:
        return "(nothing)"
    key, value, timestamp = record
    return f"{key}:{value}@{timestamp}"


def _step(step: list[Any]) -> str:
    if step[0] == "wall":
        return f"wall+{step[1]}"
    topic, key, value, timestamp = step
    return f"{topic}<-{key}:{value}@{timestamp}"


def explain(case: Case, kafka: Result, topicflow: Result) -> str:
    """A minimal reproduction: the input and where the outputs first part."""
    lines = [
        f"{case['id']} ({case['topology']}, caching {'on' if case['caching'] else 'off'})",
        "  input:      " + "  ".join(_step(s) for s in case["steps"]),
    ]
    if (kafka["error"] is None) != (topicflow["error"] is None):
        lines.append(f"  error:      kafka={kafka['error']!r} topicflow={topicflow['error']!r}")
    for topic in sorted(set(kafka["outputs"]) | set(topicflow["outputs"])):
        ks = kafka["outputs"].get(topic, [])
        ts = topicflow["outputs"].get(topic, [])
        if ks == ts:
            continue
        first = next(
            i
            for i in range(max(len(ks), len(ts)))
            if i >= len(ks) or i >= len(ts) or ks[i] != ts[i]
        )
        lines.append(f"  {topic}: first difference at record {first}")
        lines.append("    kafka:     " + "  ".join(_record(r) for r in ks))
        lines.append("    topicflow: " + "  ".join(_record(r) for r in ts))
    return "\n".join(lines)


def case_json(case: Case) -> str:
    return json.dumps(case)
