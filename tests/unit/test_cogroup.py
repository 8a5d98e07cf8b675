"""Cogrouped streams (Kafka Streams' KIP-150): names, internal topics, restore, and the
rules a shared store brings (semantics record for record: the conformance suite's
cogroup_* topologies, run against Kafka Streams)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    Grouped,
    KafkaStreams,
    Materialized,
    Named,
    Produced,
    Serdes,
    SlidingWindows,
    StreamsBuilder,
    StreamsConfig,
    Suppressed,
    TimeWindows,
    TopologyError,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.kgrouped import KGroupedStream
from topicflow.topology.topology import Topology

STRING, LONG = Serdes.String(), Serdes.Long()
STORE = "COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000002"


def _length(value: str | None) -> int:
    return 0 if value is None else len(value)


def _add_length(_key: Any, value: str | None, total: int) -> int:
    return total + _length(value)


def _add_ten_lengths(_key: Any, value: str | None, total: int) -> int:
    return total + 10 * _length(value)


def _cogrouped(builder: StreamsBuilder, first: KGroupedStream, second: KGroupedStream) -> Any:
    return first.cogroup(_add_length).cogroup(second, _add_ten_lengths)


def _describe(topology: Topology) -> list[str]:
    return str(topology.describe()).splitlines()


def _subtopology_of(lines: list[str], line: str) -> int:
    """The number of the sub-topology `line` is printed in."""
    index = lines.index(line)
    header = [s for s in lines[:index] if s.strip().startswith("Sub-topology:")][-1]
    return int(header.split(":")[1])


# -- names: Kafka Streams 4.1's describe() of the same topologies -------------------------


def test_each_stream_has_its_aggregate_node_on_one_store_then_a_merge_node() -> None:
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    cogrouped.aggregate(lambda: 0).to_stream().to("out")
    lines = _describe(builder.build())
    assert "Sub-topology: 1" not in "\n".join(lines)
    for aggregate, source in (("3", "0"), ("4", "1")):
        name = f"COGROUPKSTREAM-AGGREGATE-000000000{aggregate}"
        assert f"    Processor: {name} (stores: [{STORE}])" in lines
        assert lines[lines.index(f"    Processor: {name} (stores: [{STORE}])") + 2] == (
            f"      <-- KSTREAM-SOURCE-000000000{source}"
        )
    assert "    Processor: COGROUPKSTREAM-MERGE-0000000005 (stores: [])" in lines
    assert (
        "      <-- COGROUPKSTREAM-AGGREGATE-0000000003, COGROUPKSTREAM-AGGREGATE-0000000004"
    ) in lines
    assert "    Processor: KTABLE-TOSTREAM-0000000006 (stores: [])" in lines
    assert "    Sink: KSTREAM-SINK-0000000007 (topic: out)" in lines


def test_named_nodes_take_kafka_streams_suffixes_and_still_spend_their_indices() -> None:
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    cogrouped.aggregate(lambda: 0, Named.as_("cg")).to_stream().to("out")
    lines = _describe(builder.build())
    assert f"    Processor: cg-cogroup-agg-0 (stores: [{STORE}])" in lines
    assert f"    Processor: cg-cogroup-agg-1 (stores: [{STORE}])" in lines
    assert "      <-- cg-cogroup-agg-0, cg-cogroup-agg-1" in lines
    # Indices 3 to 5 were generated for the named nodes, as Kafka Streams does.
    assert "    Processor: KTABLE-TOSTREAM-0000000006 (stores: [])" in lines


def test_a_rekeyed_stream_goes_through_a_repartition_topic_named_for_the_store() -> None:
    builder = StreamsBuilder()
    first = builder.stream("in").group_by_key()
    rekeyed = builder.stream("in2").group_by(lambda k, v: v)
    cogrouped = _cogrouped(builder, first, rekeyed)
    cogrouped.aggregate(lambda: 0).to_stream().to("out")
    topology = builder.build()
    lines = _describe(topology)
    store = "COGROUPKSTREAM-AGGREGATE-STATE-STORE-0000000003"
    topic = f"{store}-repartition"
    sink = f"    Sink: {topic}-sink (topic: {topic})"
    source = f"    Source: {topic}-source (topics: [{topic}])"
    assert f"    Processor: {topic}-filter (stores: [])" in lines
    # The repartition topic spends indices 4 to 6: the aggregate nodes are 7 and 8.
    for aggregate in ("7", "8"):
        assert (
            f"    Processor: COGROUPKSTREAM-AGGREGATE-000000000{aggregate} (stores: [{store}])"
            in (lines)
        )
    assert "    Processor: COGROUPKSTREAM-MERGE-0000000009 (stores: [])" in lines
    # The aggregation reads `in` and the repartition topic; `in2` is rekeyed apart.
    assert _subtopology_of(lines, source) == _subtopology_of(
        lines, "    Source: KSTREAM-SOURCE-0000000000 (topics: [in])"
    )
    assert _subtopology_of(lines, sink) != _subtopology_of(lines, source)
    assert set(topology.internal_topics) == {topic, f"{store}-changelog"}


def test_two_rekeyed_streams_need_their_own_grouped_names() -> None:
    """Both would take the store's name for their repartition topic: Kafka Streams
    refuses that topology too ("Processor ...-repartition-filter is already added")."""
    builder = StreamsBuilder()
    first = builder.stream("in").group_by(lambda k, v: v)
    second = builder.stream("in2").group_by(lambda k, v: v)
    with pytest.raises(TopologyError, match="repartition-filter"):
        _cogrouped(builder, first, second).aggregate(lambda: 0)

    builder = StreamsBuilder()
    first = builder.stream("in").group_by(lambda k, v: v, Grouped.as_("one"))
    second = builder.stream("in2").group_by(lambda k, v: v, Grouped.as_("two"))
    _cogrouped(builder, first, second).aggregate(lambda: 0, materialized=Materialized.as_("t"))
    assert set(builder.build().internal_topics) == {
        "one-repartition",
        "two-repartition",
        "t-changelog",
    }


def test_windowed_cogroups_name_their_nodes_as_the_plain_one() -> None:
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    windowed = cogrouped.windowed_by(SlidingWindows.of_time_difference_with_no_grace(5000))
    windowed.aggregate(lambda: 0).to_stream().to("out")
    lines = _describe(builder.build())
    assert f"    Processor: COGROUPKSTREAM-AGGREGATE-0000000003 (stores: [{STORE}])" in lines
    assert "    Processor: COGROUPKSTREAM-MERGE-0000000005 (stores: [])" in lines


def test_a_windowed_cogroup_table_cannot_be_suppressed() -> None:
    """Kafka Streams emits a windowed cogroup on every update; suppressing it would
    need a suppression buffer of its own, which topicflow does not have."""
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    table = cogrouped.windowed_by(TimeWindows.of_size_with_no_grace(10_000)).aggregate(lambda: 0)
    with pytest.raises(TopologyError):
        table.suppress(Suppressed.until_window_closes())


# -- a shared store --------------------------------------------------------------------


def _tumbling_driver(caching: bool) -> tuple[TopologyTestDriver, Any]:
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    windows = TimeWindows.of_size_and_grace(timedelta(seconds=10), timedelta(seconds=5))
    table = cogrouped.windowed_by(windows).aggregate(
        lambda: 0, materialized=Materialized.with_(STRING, LONG)
    )
    table.to_stream().map(lambda wk, v: (f"{wk.key}@{wk.window.start}", v)).to(
        "out", Produced.with_(STRING, LONG)
    )
    config = StreamsConfig(
        application_id="cogroup",
        default_key_serde=STRING,
        default_value_serde=STRING,
        statestore_cache_max_bytes=10 * 1024 * 1024 if caching else 0,
    )
    driver = TopologyTestDriver(builder.build(), config)
    return driver, driver.create_output_topic("out", STRING, LONG)


@pytest.mark.parametrize(("caching", "expected"), [(False, 3), (True, 6)])
def test_a_window_one_stream_expired_is_still_read_from_the_cache(
    caching: bool, expected: int
) -> None:
    """From Kafka Streams 4.1: `in2`'s record at 23832 moves the store's time to its
    window (20000), which expires [0, 10000) (retention 15 s); `in`, whose own time is
    3229, still updates it. Without a cache its aggregate is gone (3 starts anew);
    Kafka's cache still holds it (3 + 3)."""
    driver, out = _tumbling_driver(caching)
    with driver:
        first = driver.create_input_topic("in", STRING, STRING)
        second = driver.create_input_topic("in2", STRING, STRING)
        first.pipe_input("a", "baa", timestamp=0)
        second.pipe_input("a", None, timestamp=23832)
        first.pipe_input("a", "bba", timestamp=3229)
        assert out.read_key_values_to_list()[-1] == ("a@0", expected)


# -- restore ---------------------------------------------------------------------------

APP = "cogroup-restore"


def _run(broker: EmbeddedBroker, state_dir: Path, total: int) -> dict[str, int]:
    builder = StreamsBuilder()
    cogrouped = _cogrouped(
        builder, builder.stream("in").group_by_key(), builder.stream("in2").group_by_key()
    )
    table = cogrouped.aggregate(
        lambda: 0, materialized=Materialized.as_("totals").with_value_serde(LONG)
    )
    table.to_stream().to("out", Produced.with_(STRING, LONG))
    config = StreamsConfig(
        application_id=APP,
        default_key_serde=STRING,
        default_value_serde=STRING,
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
    )
    streams = KafkaStreams(builder.build(), config, broker=broker)
    streams.start()
    deadline = time.monotonic() + 10
    while sum(broker.committed_offsets(APP).values()) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    assert streams.close(10)
    assert streams.error is None
    return streams.metrics()


def test_totals_continue_from_the_restored_changelog(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 2), TopicSpec("in2", 2), TopicSpec("out", 2)])
    producer = broker.producer({})

    def produce(count: int) -> None:
        for i in range(count):
            producer.produce("in", b"x", f"k{i % 3}".encode())  # + 1
            producer.produce("in2", b"yy", f"k{i % 3}".encode())  # + 20
        producer.flush(1)

    produce(30)
    _run(broker, tmp_path, 60)
    produce(30)
    metrics = _run(broker, tmp_path, 120)
    assert metrics["restored_records"] > 0
    latest: dict[str, int] = {}
    for _p, _o, key, value, _ts, _h in sorted(broker.read_all("out"), key=lambda r: r[:2]):
        assert key is not None and value is not None
        latest[key.decode()] = int.from_bytes(value, "big", signed=True)
    # 20 records of each stream per key: totals that forgot the first run would be half.
    assert latest == {f"k{i}": 20 * 1 + 20 * 20 for i in range(3)}
