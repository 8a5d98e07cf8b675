"""KTable.group_by(...).count/reduce/aggregate and KTable.suppress(until_time_limit):
names, the repartition topic's bytes, the buffer, and restore (semantics: the
conformance suite, which runs them against Kafka Streams)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    BufferConfig,
    Grouped,
    KafkaStreams,
    Materialized,
    Named,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    StreamsException,
    Suppressed,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.options import Produced
from topicflow.dsl.table_aggregate import changed_serde
from topicflow.dsl.table_suppress import buffer_entry_serde
from topicflow.errors import TopologyError
from topicflow.topology.topology import Topology


def _config(application_id: str = "grouped", state_dir: Path | None = None) -> StreamsConfig:
    # Without a cache every update reaches the next node at once: a run's
    # output does not depend on when it commits.
    settings: dict[str, Any] = {"statestore_cache_max_bytes": 0}
    if state_dir is not None:
        settings["state_dir"] = str(state_dir)
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        **settings,
    )


LONGS = Produced.with_(Serdes.String(), Serdes.Long())


def _first_letter(_key: str, value: str) -> tuple[str | None, str]:
    return value[:1] or None, value


# -- names, checked against Kafka Streams 4.1's describe() ----------------------------------


def test_group_by_count_has_kafka_streams_names() -> None:
    builder = StreamsBuilder()
    builder.table("tin").group_by(_first_letter).count().to_stream().to("out")
    description = str(builder.build().describe())
    # The grouped table is materialized (it must send old values), under the store
    # name it generated first; the select node, then the aggregate's store, the
    # repartition sink and source, the aggregate.
    assert "Processor: KTABLE-SOURCE-0000000002 (stores: [tin-STATE-STORE-0000000000])" in (
        description
    )
    assert "Processor: KTABLE-SELECT-0000000003 (stores: [])" in description
    assert (
        "Sink: KSTREAM-SINK-0000000005 (topic: KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition)"
    ) in description
    assert (
        "Source: KSTREAM-SOURCE-0000000006 "
        "(topics: [KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition])"
    ) in description
    assert (
        "Processor: KTABLE-AGGREGATE-0000000007 (stores: [KTABLE-AGGREGATE-STATE-STORE-0000000004])"
    ) in description
    assert "Processor: KTABLE-TOSTREAM-0000000008" in description
    assert "Sub-topology: 1" in description


def test_group_by_reduce_and_a_named_grouping_have_kafka_streams_names() -> None:
    builder = StreamsBuilder()
    (
        builder.table("tin")
        .group_by(lambda k, v: (k, v))
        .reduce(lambda a, v: a + v, lambda a, v: a)
        .to_stream()
        .to("out")
    )
    description = str(builder.build().describe())
    assert (
        "Processor: KTABLE-REDUCE-0000000007 (stores: [KTABLE-AGGREGATE-STATE-STORE-0000000004])"
    ) in description

    builder = StreamsBuilder()
    (
        builder.table("tin")
        .group_by(lambda k, v: (k, v), Grouped.as_("gg"))
        .aggregate(lambda: 0, lambda k, v, a: a + 1, lambda k, v, a: a - 1)
        .to_stream()
        .to("out")
    )
    description = str(builder.build().describe())
    assert "Processor: gg (stores: [])" in description
    assert "Sink: KSTREAM-SINK-0000000005 (topic: gg-repartition)" in description
    assert "Source: KSTREAM-SOURCE-0000000006 (topics: [gg-repartition])" in description

    builder = StreamsBuilder()
    builder.table("tin").group_by(lambda k, v: (k, v)).count(
        Materialized.as_("counts"), Named.as_("c")
    )
    description = str(builder.build().describe())
    assert "Sink: c-sink (topic: counts-repartition)" in description
    assert "Processor: c (stores: [counts])" in description


def test_suppress_has_kafka_streams_names() -> None:
    builder = StreamsBuilder()
    limit = Suppressed.until_time_limit(timedelta(seconds=5), BufferConfig.unbounded())
    builder.stream("in").group_by_key().count().suppress(limit).to_stream().to("out")
    topology = builder.build()
    description = str(topology.describe())
    assert (
        "Processor: KTABLE-SUPPRESS-0000000003 (stores: [KTABLE-SUPPRESS-STATE-STORE-0000000004])"
    ) in description
    spec = topology.state_stores["KTABLE-SUPPRESS-STATE-STORE-0000000004"]
    assert spec.logging and not spec.caching

    builder = StreamsBuilder()
    builder.table("tin").suppress(limit.with_name("sup")).to_stream().to("out")
    description = str(builder.build().describe())
    # The suppressed table is materialized: the buffer keeps each key's prior value.
    assert "Processor: KTABLE-SOURCE-0000000002 (stores: [tin-STATE-STORE-0000000000])" in (
        description
    )
    assert "Processor: sup (stores: [sup-store])" in description
    assert "Processor: KTABLE-TOSTREAM-0000000003" in description


def test_time_limit_suppress_on_a_windowed_table_is_refused() -> None:
    from topicflow import TimeWindows

    builder = StreamsBuilder()
    windowed = (
        builder.stream("in").group_by_key().windowed_by(TimeWindows.of_size_with_no_grace(10))
    )
    with pytest.raises(TopologyError, match="until_time_limit"):
        windowed.count().suppress(Suppressed.until_time_limit(5))


# -- the repartition topic's value: Kafka's Change layout ----------------------------------


def test_a_change_is_written_in_kafkas_changed_serializer_layout() -> None:
    serde = changed_serde(Serdes.String())
    assert serde.serialize(("ab", None)) == b"ab\x01"
    assert serde.serialize((None, "ab")) == b"ab\x00"
    # Both: zig-zag varint of the new value's length, new, old, flag 2.
    assert serde.serialize(("ab", "c")) == b"\x04abc\x02"
    assert serde.serialize(("", "")) == b"\x00\x02"
    long_value = "x" * 100  # length 100: zig-zag 200, two varint bytes
    assert serde.serialize((long_value, "y")) == b"\xc8\x01" + long_value.encode() + b"y\x02"
    for change in [("ab", None), (None, "ab"), ("ab", "c"), ("", ""), (long_value, "y")]:
        assert serde.deserialize(serde.serialize(change)) == change
    longs = changed_serde(Serdes.Long())
    assert longs.serialize((1, 2)) == b"\x10" + (1).to_bytes(8, "big") + (2).to_bytes(8, "big") + (
        b"\x02"
    )


def test_a_suppression_buffer_entry_round_trips() -> None:
    serde = buffer_entry_serde(Serdes.Long())
    entry = (1000, 2000, None, 3, 4)
    data = serde.serialize(entry)
    assert data == (
        (1000).to_bytes(8, "big")
        + (2000).to_bytes(8, "big")
        + b"\xff\xff\xff\xff"
        + b"\x00\x00\x00\x08"
        + (3).to_bytes(8, "big")
        + b"\x00\x00\x00\x08"
        + (4).to_bytes(8, "big")
    )
    assert serde.deserialize(data) == entry


# -- behaviour on the test driver --------------------------------------------------------


def _table_counts(topology: Topology) -> tuple[TopologyTestDriver, Any, Any]:
    driver = TopologyTestDriver(topology, _config())
    tin = driver.create_input_topic("tin", Serdes.String(), Serdes.String())
    out = driver.create_output_topic("out", Serdes.String(), Serdes.Long())
    return driver, tin, out


def test_an_update_leaves_its_old_group_before_it_joins_the_new_one() -> None:
    builder = StreamsBuilder()
    builder.table("tin").group_by(_first_letter).count().to_stream().to("out", LONGS)
    driver, tin, out = _table_counts(builder.build())
    with driver:
        tin.pipe_input("k", "ab", timestamp=1000)
        tin.pipe_input("j", "b", timestamp=2000)
        tin.pipe_input("k", "bb", timestamp=3000)  # a -> b
        tin.pipe_input("j", "", timestamp=4000)  # b -> a null key: only leaves b
        tin.pipe_input("k", None, timestamp=5000)  # a tombstone: only leaves b
        assert [(r.key, r.value, r.timestamp) for r in out.read_records_to_list()] == [
            ("a", 1, 1000),
            ("b", 1, 2000),
            ("a", 0, 3000),  # the aggregate's timestamp: max(record, stored)
            ("b", 2, 3000),
            ("b", 1, 4000),
            ("b", 0, 5000),
        ]


def test_a_full_buffer_shuts_down_when_asked_to() -> None:
    builder = StreamsBuilder()
    limit = Suppressed.until_time_limit(5000, BufferConfig.max_records(1).shut_down_when_full())
    builder.stream("in").group_by_key().count().suppress(limit).to_stream().to("out", LONGS)
    with TopologyTestDriver(builder.build(), _config()) as driver:
        source = driver.create_input_topic("in", Serdes.String(), Serdes.String())
        source.pipe_input("a", "x", timestamp=1000)
        with pytest.raises(StreamsException, match="buffer exceeded its max capacity"):
            source.pipe_input("b", "x", timestamp=1000)


# -- restore on the embedded broker ------------------------------------------------------


def _run(broker: EmbeddedBroker, topology: Topology, app: str, state_dir: Path, done: Any) -> None:
    """Run the application until `done()`, then close it."""
    streams = KafkaStreams(topology, _config(app, state_dir), broker=broker)
    streams.start()
    deadline = time.monotonic() + 10
    while not done() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert streams.close(10)
    assert streams.error is None


def _committed(broker: EmbeddedBroker, app: str, topic: str) -> int:
    return sum(
        offset
        for (name, _partition), offset in broker.committed_offsets(app).items()
        if name == topic
    )


def _produce(broker: EmbeddedBroker, topic: str, records: list[tuple[str, str, int]]) -> None:
    producer = broker.producer({})
    for key, value, timestamp in records:
        producer.produce(topic, value.encode(), key.encode(), timestamp=timestamp)
    producer.flush(1)


def _latest(broker: EmbeddedBroker, topic: str) -> dict[str, int]:
    latest: dict[str, int] = {}
    for _partition, _offset, key, value, _ts, _headers in sorted(
        broker.read_all(topic), key=lambda r: (r[0], r[1])
    ):
        assert key is not None and value is not None
        latest[key.decode()] = int.from_bytes(value, "big", signed=True)
    return latest


def _group_counts() -> Topology:
    builder = StreamsBuilder()
    (
        builder.table("tin")
        .group_by(_first_letter)
        .count()
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    return builder.build()


def test_group_counts_continue_from_restored_stores(tmp_path: Path) -> None:
    """After a restart the aggregate and the grouped table's own store (the old value an
    update subtracts) come back from their changelogs."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("tin", 2), TopicSpec("out", 2)])
    _produce(broker, "tin", [("k1", "ab", 1), ("k2", "ba", 2), ("k3", "aa", 3)])
    _run(
        broker, _group_counts(), "gt", tmp_path, lambda: _latest(broker, "out") == {"a": 2, "b": 1}
    )
    assert _latest(broker, "out") == {"a": 2, "b": 1}
    # The pairs crossed the repartition topic in Kafka's Change layout.
    repartition = broker.read_all("gt-KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition")
    assert {value for _p, _o, _k, value, _t, _h in repartition} == {b"ab\x01", b"ba\x01", b"aa\x01"}
    _produce(broker, "tin", [("k1", "bb", 4), ("k3", "ab", 5)])
    _run(
        broker, _group_counts(), "gt", tmp_path, lambda: _latest(broker, "out") == {"a": 1, "b": 2}
    )
    # Forgetting k1's old value would leave "a" at 3; forgetting the counts, "b" at 1.
    assert _latest(broker, "out") == {"a": 1, "b": 2}
    repartition = broker.read_all("gt-KTABLE-AGGREGATE-STATE-STORE-0000000004-repartition")
    values = [value for _p, _o, _k, value, _t, _h in repartition]
    assert b"ab\x00" in values and b"bb\x01" in values  # k1: left a, joined b
    assert b"\x04abaa\x02" in values  # k3: stayed in a, one record (new, old)


def _suppressed_counts() -> Topology:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count()
        .suppress(Suppressed.until_time_limit(timedelta(seconds=5)))
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    return builder.build()


def test_the_suppression_buffer_survives_a_restart(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    _produce(broker, "in", [("a", "x", 1000), ("b", "x", 2000), ("a", "y", 3000)])
    _run(
        broker, _suppressed_counts(), "sup", tmp_path, lambda: _committed(broker, "sup", "in") == 3
    )
    assert broker.read_all("out") == []  # held: stream time 3000 < 1000 + 5000
    # Each buffered update is a changelog record: (buffer time, timestamp, prior, old, new).
    entries = buffer_entry_serde(Serdes.Long())
    logged = [
        (key.decode(), entries.deserialize(value))
        for _p, _o, key, value, _t, _h in broker.read_all(
            "sup-KTABLE-SUPPRESS-STATE-STORE-0000000004-changelog"
        )
    ]
    assert logged == [
        ("a", (1000, 1000, 0, 0, 1)),
        ("b", (2000, 2000, 0, 0, 1)),
        ("a", (1000, 3000, 0, 1, 2)),
    ]
    _produce(broker, "in", [("c", "x", 9000)])
    _run(broker, _suppressed_counts(), "sup", tmp_path, lambda: len(broker.read_all("out")) >= 2)
    # What the first run held comes back from the changelog and is emitted now,
    # in buffer order, each with its latest update's timestamp.
    emitted = [
        (key.decode(), int.from_bytes(value, "big"), ts)
        for _p, _o, key, value, ts, _h in sorted(broker.read_all("out"), key=lambda r: r[1])
    ]
    assert emitted == [("a", 2, 3000), ("b", 1, 2000)]
    # Emitted keys are deleted from the changelog.
    deleted = broker.read_all("sup-KTABLE-SUPPRESS-STATE-STORE-0000000004-changelog")[-2:]
    assert [(key, value) for _p, _o, key, value, _t, _h in deleted] == [(b"a", None), (b"b", None)]


def test_a_filtered_count_is_buffered_with_the_counts_serde() -> None:
    """A filter keeps its parent's serdes (as Kafka's KTableImpl): the buffer logs the
    counts as Longs although the default value serde is String."""
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count()
        .filter(lambda k, v: v > 0)
        .suppress(Suppressed.until_time_limit(1000))
        .to_stream()
        .to("out", LONGS)
    )
    with TopologyTestDriver(builder.build(), _config()) as driver:
        source = driver.create_input_topic("in", Serdes.String(), Serdes.String())
        out = driver.create_output_topic("out", Serdes.String(), Serdes.Long())
        source.pipe_input("a", "x", timestamp=1000)
        source.pipe_input("b", "x", timestamp=2000)
        assert out.read_key_values_to_list() == [("a", 1)]


def test_a_driver_commit_flushes_what_a_flush_sent_through_a_repartition_topic() -> None:
    """A cached table's flush feeds the group_by's repartition topic; the aggregation it
    updates is flushed by the same commit, as the next commit of a real worker would."""
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .to_table(materialized=Materialized.as_("latest"))
        .group_by(lambda k, v: (v[:2], v))
        .count()
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    config = StreamsConfig(
        application_id="commit-test",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
    )
    with TopologyTestDriver(builder.build(), config, commit_every_record=False) as driver:
        source = driver.create_input_topic("in")
        out = driver.create_output_topic("out", Serdes.String(), Serdes.Long())
        for value in ("v1-1", "x", "v2-3"):
            source.pipe_input("k0", value)
        source.pipe_input("k1", "v2-9")
        assert out.read_key_values_to_list() == []
        driver.commit()
        # The cache merged k0's updates: it left v1 (never sent) for v2 only.
        assert sorted((kv.key, kv.value) for kv in out.read_key_values_to_list()) == [("v2", 2)]
