"""`topicflow describe|topics APP`: applications named as MODULE:ATTR or by an installed name."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from topicflow.cli.apps import load_app
from topicflow.cli.main import main
from topicflow.cli.topics import topic_specs
from topicflow.errors import ConfigError

APP_SOURCE = """
from topicflow import KafkaStreams, Materialized, StreamsBuilder, StreamsConfig

def build_topology():
    builder = StreamsBuilder()
    (
        builder.stream("lines")
        .group_by(lambda key, value: value)
        .count(Materialized.as_("counts"))
        .to_stream()
        .to("counts-out")
    )
    return builder.build()

def stateless():
    builder = StreamsBuilder()
    builder.stream("in").map_values(str.upper).to("out")
    return builder.build()

TOPOLOGY = stateless()

def streams():
    return KafkaStreams(
        build_topology(),
        StreamsConfig(application_id="wc", errors_dead_letter_queue_topic_name="wc-dlq"),
    )

NOT_AN_APP = 42
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "cli_app_example.py").write_text(APP_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cli_app_example"
    sys.modules.pop("cli_app_example", None)


def test_the_aggregators_topics_carry_the_prefix_and_changelogs_are_compacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_PREFIX", "p.")
    specs = {spec.name: spec for spec in topic_specs(load_app("aggregator"), 6, -1)}
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


def test_a_kafka_streams_brings_its_application_id_and_dead_letter_topic(app_module: str) -> None:
    names = [spec.name for spec in topic_specs(load_app(f"{app_module}:streams"), 3, 1)]
    assert names == [
        "lines",
        "counts-out",
        "wc-dlq",
        "wc-counts-repartition",
        "wc-counts-changelog",
    ]


def test_a_topology_function_needs_the_application_id_for_internal_topics(
    app_module: str,
) -> None:
    app = load_app(f"{app_module}:build_topology")
    assert app.config is None
    with pytest.raises(ConfigError, match="--application-id"):
        topic_specs(app, 1, 1)
    names = [spec.name for spec in topic_specs(app, 1, 1, application_id="x")]
    assert names == ["lines", "counts-out", "x-counts-repartition", "x-counts-changelog"]


def test_a_stateless_topology_object_needs_no_application_id(app_module: str) -> None:
    names = [spec.name for spec in topic_specs(load_app(f"{app_module}:TOPOLOGY"), 1, 1)]
    assert names == ["in", "out"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no-such-app", "no application named 'no-such-app'.*aggregator"),
        ("no_such_module_xyz:app", "cannot import 'no_such_module_xyz'"),
        ("{module}:missing", "no attribute 'missing'"),
        ("{module}:NOT_AN_APP", "is a int, not a Topology"),
        ("{module}:", "is not MODULE:ATTR"),
    ],
)
def test_a_wrong_target_is_one_clear_error(app_module: str, target: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_app(target.format(module=app_module))


def test_describe_prints_the_topology_and_a_wrong_target_exits_2(
    app_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["describe", f"{app_module}:stateless"]) == 0
    out = capsys.readouterr().out
    assert "Source: KSTREAM-SOURCE-0000000000 (topics: [in])" in out
    assert "Sink: KSTREAM-SINK-0000000002 (topic: out)" in out
    assert main(["describe", f"{app_module}:missing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"topicflow: {app_module}:missing: no attribute 'missing'"]


def test_topics_list_prints_every_name(app_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", f"{app_module}:build_topology", "--application-id", "a", "--list"]) == 0
    assert capsys.readouterr().out.split() == [
        "lines",
        "counts-out",
        "a-counts-repartition",
        "a-counts-changelog",
    ]
