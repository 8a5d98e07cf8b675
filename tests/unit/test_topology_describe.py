"""Topology.describe() prints what Kafka Streams prints; malformed topologies are refused."""

from __future__ import annotations

from typing import Any

import pytest

from services.text_processor import build_topology
from topicflow import (
    Named,
    Processor,
    Record,
    Repartitioned,
    StreamsBuilder,
    Topology,
    TopologyError,
)
from topicflow.state.stores import StoreSpec
from topicflow.testing import TopologyTestDriver
from topicflow.topology.nodes import SinkNode, SourceNode

# Kafka Streams' TopologyDescription text for
#   builder.stream("textlines").flatMapValues(...).to("words")
# Every sub-topology ends with an empty line (SubtopologyDescription.toString adds "\n"
# after its nodes, each of which ends with "\n").
TEXT_PROCESSOR_NODES = (
    "Topologies:\n"
    "   Sub-topology: 0\n"
    "    Source: KSTREAM-SOURCE-0000000000 (topics: [textlines])\n"
    "      --> KSTREAM-FLATMAPVALUES-0000000001\n"
    "    Processor: KSTREAM-FLATMAPVALUES-0000000001 (stores: [])\n"
    "      --> KSTREAM-SINK-0000000002\n"
    "      <-- KSTREAM-SOURCE-0000000000\n"
    "    Sink: KSTREAM-SINK-0000000002 (topic: words)\n"
    "      <-- KSTREAM-FLATMAPVALUES-0000000001\n"
)
KAFKA_TEXT_PROCESSOR = TEXT_PROCESSOR_NODES + "\n"

# Kafka Streams' text for builder.stream("in").repartition(Repartitioned.as("r"))... with the
# repartition nodes left out of the comparison (see the test): the second sub-topology starts
# after an empty line and is indented by two spaces, not three.
KAFKA_TWO_SUBTOPOLOGIES_LAYOUT = "\n\n  Sub-topology: 1\n"


class Nothing(Processor[Any, Any, Any, Any]):
    def process(self, record: Record[Any, Any]) -> None:
        pass


def test_text_processor_describe_lists_kafka_streams_nodes() -> None:
    # Compared without the trailing empty line Kafka Streams prints; see the next test.
    assert str(build_topology().describe()).rstrip("\n") == TEXT_PROCESSOR_NODES.rstrip("\n")


def test_text_processor_describe_is_kafka_streams_exact_text() -> None:
    assert str(build_topology().describe()) == KAFKA_TEXT_PROCESSOR


def test_text_processor_describe_with_prefix() -> None:
    text = str(build_topology("p.").describe())
    assert "(topics: [p.textlines])" in text
    assert "(topic: p.words)" in text


def repartitioned_topology() -> Topology:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .select_key(lambda k, v: v)
        .repartition(Repartitioned.as_("r"))
        .map_values(str.upper)
        .to("out")
    )
    return builder.build()


def test_repartition_splits_the_topology_in_two_subtopologies() -> None:
    topology = repartitioned_topology()
    subs = topology.subtopologies()
    assert [s.id for s in subs] == [0, 1]
    first, second = subs
    assert first.source_topics == ["in"]
    assert first.sink_topics == ["r-repartition"]
    assert second.source_topics == ["r-repartition"]
    assert second.sink_topics == ["out"]
    assert isinstance(first.nodes[0], SourceNode)
    assert isinstance(first.nodes[-1], SinkNode)
    assert isinstance(second.nodes[0], SourceNode)


def test_repartition_describe_shows_both_subtopologies() -> None:
    text = str(repartitioned_topology().describe())
    lines = text.splitlines()
    assert lines[0] == "Topologies:"
    assert lines[1] == "   Sub-topology: 0"
    assert "    Source: KSTREAM-SOURCE-0000000000 (topics: [in])" in lines
    assert "    Sink: r-repartition-sink (topic: r-repartition)" in lines
    assert "    Source: r-repartition-source (topics: [r-repartition])" in lines
    # Kafka Streams spends three indices on the repartition topic's nodes (2 to 4).
    assert "    Sink: KSTREAM-SINK-0000000006 (topic: out)" in lines
    sub1 = next(i for i, line in enumerate(lines) if line.strip() == "Sub-topology: 1")
    assert lines.index("    Sink: r-repartition-sink (topic: r-repartition)") < sub1
    assert lines.index("    Source: r-repartition-source (topics: [r-repartition])") > sub1


def test_repartition_describe_uses_kafka_streams_layout() -> None:
    text = str(repartitioned_topology().describe())
    assert KAFKA_TWO_SUBTOPOLOGIES_LAYOUT in text
    assert text.endswith("\n\n")


def test_describe_of_a_processor_api_topology() -> None:
    topology = (
        Topology()
        .add_source("src", "a", "b")
        .add_processor("p1", Nothing, "src")
        .add_processor("p2", Nothing, "src")
        .add_sink("sink", "out", "p1", "p2")
    )
    # As Kafka's addStateStore(builder, processorNames...): a store exists before
    # a processor may use it.
    topology.add_state_store(StoreSpec("s1", "key_value"), "p1")
    assert str(topology.describe()).rstrip("\n") == (
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: src (topics: [a, b])\n"
        "      --> p1, p2\n"
        "    Processor: p1 (stores: [s1])\n"
        "      --> sink\n"
        "      <-- src\n"
        "    Processor: p2 (stores: [])\n"
        "      --> sink\n"
        "      <-- src\n"
        "    Sink: sink (topic: out)\n"
        "      <-- p1, p2"
    )


def test_processor_without_children_points_to_none() -> None:
    topology = Topology().add_source("src", "a").add_processor("end", Nothing, "src")
    assert "      --> none\n" in str(topology.describe())


def test_unconnected_sources_are_separate_subtopologies() -> None:
    builder = StreamsBuilder()
    builder.stream("a").to("x")
    builder.stream("b").to("y")
    subs = builder.build().subtopologies()
    assert [(s.id, s.source_topics, s.sink_topics) for s in subs] == [
        (0, ["a"], ["x"]),
        (1, ["b"], ["y"]),
    ]


def test_merged_sources_are_one_subtopology() -> None:
    builder = StreamsBuilder()
    builder.stream("a").merge(builder.stream("b")).to("x")
    subs = builder.build().subtopologies()
    assert len(subs) == 1
    assert subs[0].source_topics == ["a", "b"]


# -- malformed topologies --------------------------------------------------------------------------


def test_duplicate_source_name_is_refused() -> None:
    topology = Topology().add_source("src", "a")
    with pytest.raises(TopologyError, match="'src'"):
        topology.add_source("src", "b")


def test_duplicate_processor_name_is_refused() -> None:
    topology = Topology().add_source("src", "a").add_processor("p", Nothing, "src")
    with pytest.raises(TopologyError, match="'p'"):
        topology.add_processor("p", Nothing, "src")
    with pytest.raises(TopologyError, match="'p'"):
        topology.add_sink("p", "out", "src")


def test_duplicate_dsl_name_is_refused() -> None:
    builder = StreamsBuilder()
    stream = builder.stream("a").filter(lambda k, v: True, Named.as_("keep"))
    with pytest.raises(TopologyError, match="'keep'"):
        stream.map_values(str, named="keep")


def test_unknown_parent_is_refused() -> None:
    topology = Topology().add_source("src", "a")
    with pytest.raises(TopologyError, match="'ghost'"):
        topology.add_processor("p", Nothing, "src", "ghost")
    with pytest.raises(TopologyError, match="'ghost'"):
        topology.add_sink("sink", "out", "ghost")
    # Nothing half-added: the name is still free.
    topology.add_processor("p", Nothing, "src")


def test_processor_without_parent_is_refused() -> None:
    with pytest.raises(TopologyError, match="parent"):
        Topology().add_source("src", "a").add_processor("p", Nothing)


def test_sink_cannot_be_a_parent() -> None:
    topology = Topology().add_source("src", "a").add_sink("sink", "out", "src")
    with pytest.raises(TopologyError, match="'sink'"):
        topology.add_processor("p", Nothing, "sink")


def test_source_needs_a_topic() -> None:
    with pytest.raises(TopologyError, match="'src'"):
        Topology().add_source("src")


def test_a_topic_is_read_by_one_source_only() -> None:
    topology = Topology().add_source("s1", "a", "b")
    with pytest.raises(TopologyError, match="'b'"):
        topology.add_source("s2", "b")
    builder = StreamsBuilder()
    builder.stream("a")
    with pytest.raises(TopologyError):
        builder.stream("a")


def test_build_without_a_source_is_refused() -> None:
    with pytest.raises(TopologyError, match="source"):
        StreamsBuilder().build()
    with pytest.raises(TopologyError, match="source"):
        Topology().describe()
    with pytest.raises(TopologyError, match="source"):
        TopologyTestDriver(Topology())


def test_grouping_repartition_nodes_take_kafka_streams_generated_names() -> None:
    # Kafka Streams 4.1's describe(): the aggregation is named first (3), then the
    # repartition topic's sink, filter and source (4 to 6), named as generated because
    # the topic's name (the store's) is itself a generated one.
    builder = StreamsBuilder()
    builder.stream("in").group_by(lambda k, v: v).count().to_stream().to("out")
    lines = str(builder.build().describe()).splitlines()
    topic = "KSTREAM-AGGREGATE-STATE-STORE-0000000002-repartition"
    assert "    Processor: KSTREAM-FILTER-0000000005 (stores: [])" in lines
    assert f"    Sink: KSTREAM-SINK-0000000004 (topic: {topic})" in lines
    assert f"    Source: KSTREAM-SOURCE-0000000006 (topics: [{topic}])" in lines
    assert (
        "    Processor: KSTREAM-AGGREGATE-0000000003 "
        "(stores: [KSTREAM-AGGREGATE-STATE-STORE-0000000002])"
    ) in lines
    assert "    Sink: KSTREAM-SINK-0000000008 (topic: out)" in lines
