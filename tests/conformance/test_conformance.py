"""Kafka Streams is the oracle: every topology of the catalogue, 200 seeded cases per mode.

The Java side runs once for all cases (one JVM), so the whole suite costs
about as much as starting Maven and the JVM. A difference fails the variant's
test with a shrunk, minimal reproduction.

`KNOWN_DIVERGENCES` lists the variants that still differ, each with its cause;
they are strict xfails, so a variant that becomes identical fails until it is
taken off the list. The list shrinks to nothing: it is the work left.
"""

from __future__ import annotations

import pytest

from tests.conformance.cases import Case, generate, variants
from tests.conformance.compare import explain, same, shrink
from tests.conformance.runner import Result, run_kafka_streams, run_topicflow
from tests.conformance.topologies import TOPOLOGIES

SEED = 20261204
CASES = 200

# (topology, caching) -> why it still differs from Kafka Streams. Empty: every
# variant is identical. An operation that lands before it matches goes here.
KNOWN_DIVERGENCES: dict[tuple[str, bool], str] = {}


def _variant_id(topology: str, caching: bool) -> str:
    return f"{topology}-cache-{'on' if caching else 'off'}"


def _params() -> list[object]:
    params: list[object] = []
    for topology, caching in variants(list(TOPOLOGIES)):
        reason = KNOWN_DIVERGENCES.get((topology, caching))
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(
            pytest.param(topology, caching, marks=marks, id=_variant_id(topology, caching))
        )
    return params


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, bool], list[tuple[Case, Result, Result]]]:
    cases = generate(SEED, CASES, list(TOPOLOGIES))
    by_variant: dict[tuple[str, bool], list[tuple[Case, Result, Result]]] = {}
    for case, k, t in zip(cases, run_kafka_streams(cases), run_topicflow(cases), strict=True):
        by_variant.setdefault((case["topology"], case["caching"]), []).append((case, k, t))
    return by_variant


@pytest.mark.parametrize(("topology", "caching"), _params())
def test_same_output_as_kafka_streams(
    topology: str,
    caching: bool,
    results: dict[tuple[str, bool], list[tuple[Case, Result, Result]]],
) -> None:
    runs = results[(topology, caching)]
    assert len(runs) == CASES
    # The cases must reach the corners they are for: a suite of empty outputs
    # would pass whatever topicflow did.
    assert sum(1 for _, k, _ in runs if any(k["outputs"].values())) >= CASES // 4
    failing = [case for case, k, t in runs if not same(k, t)]
    if failing:
        shown = []
        for case in shrink(failing[:3], run_kafka_streams, run_topicflow):
            [k] = run_kafka_streams([case])
            [t] = run_topicflow([case])
            shown.append(explain(case, k, t))
        pytest.fail(
            f"{len(failing)} of {len(runs)} cases differ from Kafka Streams:\n\n"
            + "\n\n".join(shown),
            pytrace=False,
        )
