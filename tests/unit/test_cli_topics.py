"""`topicflow topics SERVICE`: every topic a service needs, internal ones with their configs."""

from __future__ import annotations

import pytest

from topicflow.cli.topics import topic_specs


def test_the_aggregators_topics_carry_the_prefix_and_changelogs_are_compacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_PREFIX", "p.")
    specs = {spec.name: spec for spec in topic_specs("aggregator", 6, -1)}
    assert set(specs) == {
        "p.words",
        # Where the Aggregator's skipped records go (services/service.py).
        "p.aggregator-dlq",
        "p.aggregator-app-windowed-counts-repartition",
        "p.aggregator-app-windowed-counts-changelog",
    }
    assert all(spec.partitions == 6 for spec in specs.values())
    changelog = specs["p.aggregator-app-windowed-counts-changelog"].config or {}
    assert changelog["cleanup.policy"] == "compact,delete"
    assert int(changelog["retention.ms"]) > 10_000
    repartition = specs["p.aggregator-app-windowed-counts-repartition"].config or {}
    assert repartition.get("cleanup.policy", "delete") == "delete"
