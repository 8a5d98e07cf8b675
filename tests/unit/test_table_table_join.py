"""Table-table joins in the DSL and the runtime (semantics: the conformance suite,
which runs them against Kafka Streams)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    KafkaStreams,
    Materialized,
    Named,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import TopologyError


def _config(application_id: str = "ttjoin", state_dir: Path | None = None) -> StreamsConfig:
    extra = {} if state_dir is None else {"state_dir": str(state_dir)}
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        **extra,  # type: ignore[arg-type]
    )


def _joined(value: str | None, other: str | None) -> str:
    return f"{value}+{other}"


def _describe(build: Any) -> str:
    builder = StreamsBuilder()
    build(builder)
    return str(builder.build().describe())


def test_describe_names_are_kafka_streams() -> None:
    # Checked against Kafka Streams 4.1's describe() of the same topology: the merge
    # node's name is generated before the sides', each side reads the other's store.
    description = _describe(
        lambda b: b.table("tin").join(b.table("tin2"), _joined).to_stream().to("out")
    )
    assert "Processor: KTABLE-JOINTHIS-0000000007 (stores: [tin2-STATE-STORE-0000000003])" in (
        description
    )
    assert "Processor: KTABLE-JOINOTHER-0000000008 (stores: [tin-STATE-STORE-0000000000])" in (
        description
    )
    assert "Processor: KTABLE-MERGE-0000000006 (stores: [])" in description
    assert "<-- KTABLE-JOINTHIS-0000000007, KTABLE-JOINOTHER-0000000008" in description
    assert "Processor: KTABLE-SOURCE-0000000005 (stores: [tin2-STATE-STORE-0000000003])" in (
        description
    )
    assert "Sub-topology: 1" not in description


def test_describe_names_when_materialized_or_named() -> None:
    description = _describe(
        lambda b: (
            b.table("tin")
            .left_join(b.table("tin2"), _joined, materialized=Materialized.with_(None, None))
            .to_stream()
            .to("out")
        )
    )
    # An unnamed store is generated first: KTABLE-MERGE-STATE-STORE, then the merge node.
    assert (
        "Processor: KTABLE-MERGE-0000000007 (stores: [KTABLE-MERGE-STATE-STORE-0000000006])"
        in description
    )
    assert "Processor: KTABLE-JOINTHIS-0000000008 " in description
    assert "Processor: KTABLE-TOSTREAM-0000000010 " in description
    description = _describe(
        lambda b: (
            b.table("tin")
            .outer_join(b.table("tin2"), _joined, Named.as_("jn"), Materialized.as_("joined"))
            .to_stream()
            .to("out")
        )
    )
    assert "Processor: jn-join-this (stores: [tin2-STATE-STORE-0000000003])" in description
    assert "Processor: jn-join-other (stores: [tin-STATE-STORE-0000000000])" in description
    assert "Processor: jn (stores: [joined])" in description
    assert "Processor: KTABLE-TOSTREAM-0000000006 " in description


def test_a_join_of_a_join_reads_both_stores_of_the_first() -> None:
    def build(b: StreamsBuilder) -> None:
        # The order of Kafka Streams' twin: the three tables first.
        t1, t2, t3 = b.table("tin"), b.table("tin2"), b.table("tin3")
        first = t1.filter(lambda k, v: True).join(t2.map_values(str.upper), _joined)
        first.join(t3, _joined).filter(lambda k, v: True).to_stream().to("out")

    description = _describe(build)
    assert (
        "Processor: KTABLE-JOINOTHER-0000000016 (stores: [tin-STATE-STORE-0000000000, "
        "tin2-STATE-STORE-0000000003])" in description
    )
    assert "Processor: KTABLE-JOINTHIS-0000000015 (stores: [tin3-STATE-STORE-0000000006])" in (
        description
    )
    assert "Processor: KTABLE-FILTER-0000000017 (stores: [])" in description


def test_internal_topics_are_the_stores_changelogs() -> None:
    builder = StreamsBuilder()
    builder.table("a").left_join(
        builder.table("b"), _joined, materialized=Materialized.as_("joined")
    ).to_stream().to("out")
    topology = builder.build()
    # Both tables are materialized for the join, the join table as asked.
    assert set(topology.internal_topics) == {
        "a-STATE-STORE-0000000000-changelog",
        "b-STATE-STORE-0000000003-changelog",
        "joined-changelog",
    }


def _run(build: Any, steps: list[tuple[str, str | None, str | None, int]]) -> list[Any]:
    builder = StreamsBuilder()
    build(builder)
    with TopologyTestDriver(builder.build(), _config()) as driver:
        topics = {t: driver.create_input_topic(t) for t in ("tin", "tin2")}
        for topic, key, value, timestamp in steps:
            topics[topic].pipe_input(key, value, timestamp=timestamp)
        out = driver.create_output_topic("out").read_records_to_list()
    return [(r.key, r.value, r.timestamp) for r in out]


STEPS = [
    ("tin", "a", "x", 10),
    ("tin2", "a", "y", 5),  # joins at the later timestamp of both sides
    ("tin2", "b", "z", 20),
    ("tin", "a", None, 30),  # a deletion of a joined key
    ("tin2", "a", None, 40),
    ("tin", "c", "w", 50),
    ("tin", "c", None, 60),  # left, outer: known as a deletion by its old value
    ("tin", "d", None, 70),  # the deletion of a key no table has: nothing
]


def test_inner_join_emits_where_both_tables_have_the_key() -> None:
    out = _run(lambda b: b.table("tin").join(b.table("tin2"), _joined).to_stream().to("out"), STEPS)
    assert out == [("a", "x+y", 10), ("a", None, 30)]


def test_left_join_emits_for_every_key_of_the_left_table() -> None:
    out = _run(
        lambda b: b.table("tin").left_join(b.table("tin2"), _joined).to_stream().to("out"), STEPS
    )
    assert out == [
        ("a", "x+None", 10),
        ("a", "x+y", 10),
        ("a", None, 30),
        ("c", "w+None", 50),
        ("c", None, 60),
    ]


def test_outer_join_emits_for_every_key_of_either_table() -> None:
    out = _run(
        lambda b: b.table("tin").outer_join(b.table("tin2"), _joined).to_stream().to("out"), STEPS
    )
    assert out == [
        ("a", "x+None", 10),
        ("a", "x+y", 10),
        ("b", "None+z", 20),
        ("a", "None+y", 30),
        ("a", None, 40),
        ("c", "w+None", 50),
        ("c", None, 60),
    ]


def test_a_filter_below_a_join_receives_old_values() -> None:
    # The filter drops updates that fail before and after (it knows the old value),
    # instead of a tombstone for each.
    out = _run(
        lambda b: (
            b.table("tin")
            .outer_join(b.table("tin2"), _joined)
            .filter(lambda k, v: "x" in v)
            .to_stream()
            .to("out")
        ),
        STEPS,
    )
    assert out == [("a", "x+None", 10), ("a", "x+y", 10), ("a", None, 30)]


def test_a_join_of_tables_from_different_builders_is_refused() -> None:
    with pytest.raises(TopologyError, match="same StreamsBuilder"):
        StreamsBuilder().table("a").join(StreamsBuilder().table("b"), _joined)


def _restart_topology() -> Any:
    builder = StreamsBuilder()
    joined = builder.table("left").left_join(
        builder.table("right"), _joined, materialized=Materialized.as_("joined")
    )
    builder.stream("lookups").join(joined, lambda v, j: f"{v}={j}").to("out")
    return builder.build()


def test_the_join_tables_restore_from_their_changelogs(tmp_path: Path) -> None:
    """The tables' stores and the join's own survive a restart: after it, an update of
    one side still finds the other, and the join table still holds its rows."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, 1) for t in ("left", "right", "lookups", "out")])
    producer = broker.producer({})

    def produce(topic: str, key: str, value: str) -> None:
        producer.produce(topic, value.encode(), key.encode())
        producer.flush(1)

    def run(until: int) -> None:
        streams = KafkaStreams(
            _restart_topology(), _config("ttjoin-restore", tmp_path), broker=broker
        )
        streams.start()
        deadline = time.monotonic() + 10
        while sum(broker.committed_offsets("ttjoin-restore").values()) < until:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert streams.close(10)
        assert streams.error is None

    produce("left", "a", "x")
    produce("left", "b", "u")
    produce("right", "a", "y")
    run(3)
    produce("right", "b", "v")  # joins with the restored left store
    produce("lookups", "a", "q")  # reads the restored join store
    run(5)
    produce("lookups", "b", "r")
    run(6)
    out = [(k.decode(), v.decode()) for _p, _o, k, v, _t, _h in broker.read_all("out")]
    assert out == [("a", "q=x+y"), ("b", "r=u+v")]


def test_a_stream_joins_a_join_table_through_both_tables_stores() -> None:
    builder = StreamsBuilder()
    t1, t2 = builder.table("tin"), builder.table("tin2")
    stream = builder.stream("in")
    stream.join(t1.join(t2, _joined), lambda v, j: f"{v}/{j}").to("out")
    topology = builder.build()
    # As Kafka Streams' describe() of the same topology.
    assert (
        "Processor: KSTREAM-JOIN-0000000010 (stores: [tin-STATE-STORE-0000000000, "
        "tin2-STATE-STORE-0000000003])" in str(topology.describe())
    )
    with TopologyTestDriver(topology, _config()) as driver:
        driver.create_input_topic("tin").pipe_input("a", "x", timestamp=1)
        driver.create_input_topic("tin2").pipe_input("a", "y", timestamp=2)
        clicks = driver.create_input_topic("in")
        clicks.pipe_input("a", "q", timestamp=3)
        clicks.pipe_input("b", "r", timestamp=4)
        out = driver.create_output_topic("out").read_records_to_list()
    assert [(r.key, r.value, r.timestamp) for r in out] == [("a", "q/x+y", 3)]
