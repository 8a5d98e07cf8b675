"""Stream-stream joins in the DSL and the runtime (their semantics: the conformance
suite, which runs them against Kafka Streams 4.1)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    JoinWindows,
    KafkaStreams,
    Serdes,
    StreamJoined,
    StreamsBuilder,
    StreamsConfig,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import TopologyError

WINDOWS = JoinWindows.of_time_difference_and_grace(5000, 3000)


def joiner(value: Any, other: Any) -> str:
    return f"{value}+{other}"


def _config(**settings: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id="ssjoin",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **settings,
    )


def _both(builder: StreamsBuilder) -> tuple[Any, Any]:
    return builder.stream("in"), builder.stream("in2")


# Kafka Streams 4.1's describe() of the same topologies.
KAFKA_LEFT_JOIN = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-WINDOWED-0000000002
    Source: KSTREAM-SOURCE-0000000001 (topics: [in2])
      --> KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-WINDOWED-0000000002 (stores: [KSTREAM-JOINTHIS-0000000004-store])
      --> KSTREAM-JOINTHIS-0000000004
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-WINDOWED-0000000003 (stores: [KSTREAM-OUTEROTHER-0000000005-store])
      --> KSTREAM-OUTEROTHER-0000000005
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-JOINTHIS-0000000004 (stores: [KSTREAM-OUTEROTHER-0000000005-store, \
KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000002
    Processor: KSTREAM-OUTEROTHER-0000000005 (stores: [KSTREAM-JOINTHIS-0000000004-store, \
KSTREAM-OUTERSHARED-0000000004-store])
      --> KSTREAM-MERGE-0000000006
      <-- KSTREAM-WINDOWED-0000000003
    Processor: KSTREAM-MERGE-0000000006 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-JOINTHIS-0000000004, KSTREAM-OUTEROTHER-0000000005
    Sink: KSTREAM-SINK-0000000007 (topic: out)
      <-- KSTREAM-MERGE-0000000006
"""

KAFKA_OUTER_JOIN_NAMED = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> nm-this-windowed
    Source: KSTREAM-SOURCE-0000000001 (topics: [in2])
      --> nm-other-windowed
    Processor: nm-other-windowed (stores: [sj-outer-other-join-store])
      --> nm-outer-other-join
      <-- KSTREAM-SOURCE-0000000001
    Processor: nm-this-windowed (stores: [sj-outer-this-join-store])
      --> nm-outer-this-join
      <-- KSTREAM-SOURCE-0000000000
    Processor: nm-outer-other-join (stores: [sj-outer-shared-join-store, sj-outer-this-join-store])
      --> nm-merge
      <-- nm-other-windowed
    Processor: nm-outer-this-join (stores: [sj-outer-shared-join-store, sj-outer-other-join-store])
      --> nm-merge
      <-- nm-this-windowed
    Processor: nm-merge (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- nm-outer-this-join, nm-outer-other-join
    Sink: KSTREAM-SINK-0000000007 (topic: out)
      <-- nm-merge
"""

KAFKA_JOIN_BOTH_REKEYED = """\
Topologies:
   Sub-topology: 0
    Source: KSTREAM-SOURCE-0000000000 (topics: [in])
      --> KSTREAM-KEY-SELECT-0000000002
    Processor: KSTREAM-KEY-SELECT-0000000002 (stores: [])
      --> KSTREAM-FILTER-0000000005
      <-- KSTREAM-SOURCE-0000000000
    Processor: KSTREAM-FILTER-0000000005 (stores: [])
      --> KSTREAM-SINK-0000000004
      <-- KSTREAM-KEY-SELECT-0000000002
    Sink: KSTREAM-SINK-0000000004 (topic: KSTREAM-KEY-SELECT-0000000002-repartition)
      <-- KSTREAM-FILTER-0000000005

  Sub-topology: 1
    Source: KSTREAM-SOURCE-0000000001 (topics: [in2])
      --> KSTREAM-KEY-SELECT-0000000003
    Processor: KSTREAM-KEY-SELECT-0000000003 (stores: [])
      --> KSTREAM-FILTER-0000000008
      <-- KSTREAM-SOURCE-0000000001
    Processor: KSTREAM-FILTER-0000000008 (stores: [])
      --> KSTREAM-SINK-0000000007
      <-- KSTREAM-KEY-SELECT-0000000003
    Sink: KSTREAM-SINK-0000000007 (topic: KSTREAM-KEY-SELECT-0000000003-repartition)
      <-- KSTREAM-FILTER-0000000008

  Sub-topology: 2
    Source: KSTREAM-SOURCE-0000000006 (topics: [KSTREAM-KEY-SELECT-0000000002-repartition])
      --> KSTREAM-WINDOWED-0000000010
    Source: KSTREAM-SOURCE-0000000009 (topics: [KSTREAM-KEY-SELECT-0000000003-repartition])
      --> KSTREAM-WINDOWED-0000000011
    Processor: KSTREAM-WINDOWED-0000000010 (stores: [KSTREAM-JOINTHIS-0000000012-store])
      --> KSTREAM-JOINTHIS-0000000012
      <-- KSTREAM-SOURCE-0000000006
    Processor: KSTREAM-WINDOWED-0000000011 (stores: [KSTREAM-JOINOTHER-0000000013-store])
      --> KSTREAM-JOINOTHER-0000000013
      <-- KSTREAM-SOURCE-0000000009
    Processor: KSTREAM-JOINOTHER-0000000013 (stores: [KSTREAM-JOINTHIS-0000000012-store])
      --> KSTREAM-MERGE-0000000014
      <-- KSTREAM-WINDOWED-0000000011
    Processor: KSTREAM-JOINTHIS-0000000012 (stores: [KSTREAM-JOINOTHER-0000000013-store])
      --> KSTREAM-MERGE-0000000014
      <-- KSTREAM-WINDOWED-0000000010
    Processor: KSTREAM-MERGE-0000000014 (stores: [])
      --> KSTREAM-SINK-0000000015
      <-- KSTREAM-JOINTHIS-0000000012, KSTREAM-JOINOTHER-0000000013
    Sink: KSTREAM-SINK-0000000015 (topic: out)
      <-- KSTREAM-MERGE-0000000014
"""


def _describe(builder: StreamsBuilder) -> str:
    text = str(builder.build().describe())
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def test_left_join_names_nodes_and_stores_as_kafka_streams() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.left_join(right, joiner, WINDOWS).to("out")
    assert _describe(builder) == KAFKA_LEFT_JOIN.strip()


def test_outer_join_named_by_stream_joined_as_kafka_streams() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    named = StreamJoined.as_("sj").with_name("nm")
    left.outer_join(right, joiner, WINDOWS, named).to("out")
    assert _describe(builder) == KAFKA_OUTER_JOIN_NAMED.strip()
    topics = builder.build().internal_topics
    assert set(topics) == {
        "sj-outer-this-join-store-changelog",
        "sj-outer-other-join-store-changelog",
        "sj-outer-shared-join-store-changelog",
    }
    # Duplicates live under distinct keys: the window stores' changelogs are not
    # compacted (Kafka Streams' StreamJoinedStoreFactory); the shared store's is.
    this = topics["sj-outer-this-join-store-changelog"].config
    assert this["cleanup.policy"] == "delete"
    assert this["retention.ms"] == str(13000 + 24 * 3600 * 1000)
    assert topics["sj-outer-shared-join-store-changelog"].config["cleanup.policy"] == "compact"


def test_stream_joined_may_turn_the_changelogs_off() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    joined = StreamJoined().with_store_name("sj").with_logging_disabled()
    left.left_join(right, joiner, WINDOWS, joined).to("out")
    topology = builder.build()
    assert topology.internal_topics == {}
    assert "(stores: [sj-left-shared-join-store, sj-this-join-store])" in str(topology.describe())


def test_rekeyed_sides_repartition_first_as_kafka_streams() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.select_key(lambda k, v: v).join(right.select_key(lambda k, v: v), joiner, WINDOWS).to(
        "out"
    )
    assert _describe(builder) == KAFKA_JOIN_BOTH_REKEYED.strip()


def test_a_named_join_names_its_repartition_topics() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    named = StreamJoined.with_(None, None, None).with_name("nm")
    left.select_key(lambda k, v: v).left_join(right, joiner, WINDOWS, named).to("out")
    topology = builder.build()
    assert "nm-left-repartition" in topology.internal_topics
    assert "Sink: nm-left-repartition-sink (topic: nm-left-repartition)" in str(topology.describe())


def test_join_windows_validate_as_kafka_streams() -> None:
    assert JoinWindows.of_time_difference_with_no_grace(5000).grace_ms == 0
    windows = WINDOWS.before(2000).after(6000)
    assert (windows.before_ms, windows.after_ms, windows.grace_ms) == (2000, 6000, 3000)
    assert WINDOWS.before(-1000).size_ms() == 4000  # one bound may be negative
    with pytest.raises(TopologyError):
        WINDOWS.before(-6000)
    with pytest.raises(TopologyError):
        JoinWindows.of_time_difference_and_grace(5000, -1)


def test_a_stream_join_needs_join_windows() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    with pytest.raises(TopologyError, match="JoinWindows"):
        left.join(right, joiner)


def _drive_steps(
    builder: StreamsBuilder, steps: list[tuple[Any, ...]], **settings: Any
) -> list[list[Any]]:
    """Pipe (topic, key, value, timestamp) or ("wall", ms); per record piped, the
    output it caused as (key, value, timestamp)."""
    outputs = []
    with TopologyTestDriver(builder.build(), _config(**settings)) as driver:
        inputs = {topic: driver.create_input_topic(topic) for topic in ("in", "in2")}
        out = driver.create_output_topic("out")
        for step in steps:
            if step[0] == "wall":
                driver.advance_wall_clock_time(step[1])
                continue
            topic, key, value, timestamp = step
            inputs[topic].pipe_input(key, value, timestamp=timestamp)
            outputs.append([(r.key, r.value, r.timestamp) for r in out.read_records_to_list()])
    return outputs


def _drive(builder: StreamsBuilder, steps: list[tuple[Any, ...]], **settings: Any) -> list[Any]:
    return [record for output in _drive_steps(builder, steps, **settings) for record in output]


def test_a_left_join_emits_no_early_result_for_a_record_joined_later() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.left_join(right, joiner, WINDOWS).to("out")
    output = _drive(
        builder,
        [
            ("in", "a", "x", 1000),
            ("in", "b", "y", 2000),  # stream time moves on; "a" may still meet a partner
            ("in2", "a", "z", 5000),  # ... and does, within its window
            ("in", "c", "w", 20000),  # every window so far closed
        ],
    )
    # No "x+None": "a" joined. "b" never met a partner, and is emitted once its
    # window (2000 + 5000) and grace (3000) passed, with its own timestamp.
    assert output == [("a", "x+z", 5000), ("b", "y+None", 2000)]


def test_joins_keep_every_record_of_a_key_and_timestamp() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.outer_join(right, lambda k, v, o: f"{k}:{v}+{o}", WINDOWS, with_key=True).to("out")
    output = _drive(
        builder,
        [
            ("in", "a", "x1", 1000),
            ("in", "a", "x2", 1000),
            ("in2", "a", "z", 4000),
            ("in2", None, "n", 4000),  # an outer side joins a null key at once
            ("in2", "b", "y", 4000),
            ("in", "c", "w", 30000),
        ],
    )
    assert output == [
        ("a", "a:x1+z", 4000),
        ("a", "a:x2+z", 4000),
        (None, "None:None+n", 4000),
        ("b", "b:None+y", 4000),
    ]


# Kafka Streams 4.1 with its emit interval at 1 s (its test driver sets it to 0):
# the shared store is scanned at most once per second of wall-clock time.
THROTTLED_STEPS: list[tuple[Any, ...]] = [
    ("in", "a", "x", 1000),
    ("in", "b", "y", 20000),
    ("in", "c", "z", 40000),
    ("wall", 1000),
    ("in", "d", "w", 60000),
    ("in", "e", "v", 61000),
    ("wall", 500),
    ("in", "f", "u", 80000),
    ("wall", 500),
    ("in", "g", "t", 90000),
    ("in2", "h", "s", 95000),
    ("wall", 2000),
    ("in2", "i", "q", 99000),
    ("in", "j", "p", 120000),
]
KAFKA_THROTTLED_OUTPUT = [
    [],
    [],
    [],
    [("a", "x+None", 1000), ("b", "y+None", 20000), ("c", "z+None", 40000)],
    [],
    [],
    [("d", "w+None", 60000), ("e", "v+None", 61000), ("f", "u+None", 80000)],
    [],
    [("g", "t+None", 90000)],
    [],
]


def test_the_shared_store_is_scanned_once_per_emit_interval_as_kafka_streams() -> None:
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.left_join(right, joiner, WINDOWS).to("out")
    output = _drive_steps(builder, THROTTLED_STEPS, outer_join_emit_interval_ms=1000)
    assert output == KAFKA_THROTTLED_OUTPUT


# -- restore ---------------------------------------------------------------------------

APP = "ssjoin-restore"


def _restore_topology(persistent: bool) -> Any:
    joined = StreamJoined.as_("j")
    if persistent:
        joined = joined.persistent_stores()
    builder = StreamsBuilder()
    left, right = _both(builder)
    left.outer_join(right, joiner, WINDOWS, joined).to("out")
    return builder.build()


def _run(broker: EmbeddedBroker, state_dir: Path, persistent: bool, total: int) -> dict[str, int]:
    config = StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
        # Scan for closed windows at every record, not once per second of wall clock.
        outer_join_emit_interval_ms=0,
    )
    streams = KafkaStreams(_restore_topology(persistent), config, broker=broker)
    streams.start()
    deadline = time.monotonic() + 10
    while sum(broker.committed_offsets(APP).values()) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    assert streams.close(10)
    assert streams.error is None
    return streams.metrics()


def _produce(broker: EmbeddedBroker, records: list[tuple[str, str, str, int]]) -> None:
    producer = broker.producer({})
    for topic, key, value, timestamp in records:
        producer.produce(topic, value.encode(), key.encode(), timestamp=timestamp)
    producer.flush(1)


def _output(broker: EmbeddedBroker) -> list[tuple[str, str, int]]:
    return [
        (key.decode(), value.decode(), ts)
        for _p, _o, key, value, ts, _h in sorted(broker.read_all("out"), key=lambda r: r[1])
        if key is not None and value is not None
    ]


@pytest.mark.parametrize(
    ("persistent", "crash"),
    [(False, False), (True, False), (True, True)],
    ids=["in-memory", "rocksdb", "rocksdb-without-checkpoint"],
)
def test_join_stores_survive_a_restart(tmp_path: Path, persistent: bool, crash: bool) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("in2", 1), TopicSpec("out", 1)])
    _produce(broker, [("in", "a", "x1", 1000), ("in", "a", "x2", 1000), ("in", "b", "y", 2000)])
    _run(broker, tmp_path, persistent, 3)
    assert _output(broker) == []  # nothing joined, no window closed
    if crash:
        for checkpoint in tmp_path.rglob(".checkpoint"):
            checkpoint.unlink()  # nothing vouches for the local copy: restored in full
    # The right side meets both records of "a" from the restored window store
    # (duplicates kept); "b" waits in the restored shared store until its window
    # closes, and "a" no longer does.
    _produce(broker, [("in2", "a", "z", 3000), ("in2", "c", "w", 20000)])
    metrics = _run(broker, tmp_path, persistent, 5)
    assert _output(broker) == [("a", "x1+z", 3000), ("a", "x2+z", 3000), ("b", "y+None", 2000)]
    if persistent and not crash:
        assert metrics["restored_records"] == 0  # the local copy was checkpointed
    else:
        assert metrics["restored_records"] > 0


# -- RocksDB ---------------------------------------------------------------------------


def _outer_join(persistent: bool, rekeyed: bool) -> Any:
    joined = StreamJoined.with_(None, None, None)
    if persistent:
        joined = joined.persistent_stores()
    builder = StreamsBuilder()
    left, right = _both(builder)
    if rekeyed:
        left = left.select_key(lambda k, v: v[:1] if v else None)
    left.outer_join(right, joiner, WINDOWS.before(2000), joined).to("out")
    return builder.build()


def _run_case(topology: Any, steps: list[Any], state_dir: Path) -> list[Any]:
    config = _config(state_dir=str(state_dir), statestore_cache_max_bytes=0)
    with TopologyTestDriver(topology, config) as driver:
        for step in steps:
            if step[0] == "wall":
                driver.advance_wall_clock_time(step[1])
            else:
                topic, key, value, timestamp = step
                driver.pipe_raw(
                    topic,
                    None if key is None else key.encode(),
                    None if value is None else value.encode(),
                    timestamp,
                )
        records = driver.create_output_topic("out").read_records_to_list()
    return [(r.key, r.value, r.timestamp) for r in records]


@pytest.mark.parametrize("rekeyed", [False, True], ids=["same-keys", "rekeyed"])
def test_rocksdb_join_stores_join_as_the_in_memory_ones(tmp_path: Path, rekeyed: bool) -> None:
    """The conformance suite's random cases, through in-memory and RocksDB stores."""
    import random

    from tests.conformance.cases import steps_for

    rng = random.Random(f"rocksdb-join/{rekeyed}")
    for case in range(20):
        steps = steps_for(rng, ("in", "in2"), rng.choice((4, 8, 16, 30)))
        in_memory = _run_case(_outer_join(False, rekeyed), steps, tmp_path / f"m{case}")
        on_disk = _run_case(_outer_join(True, rekeyed), steps, tmp_path / f"r{case}")
        assert on_disk == in_memory, steps


def test_rocksdb_join_window_store_keeps_duplicates_apart_from_longer_keys(tmp_path: Path) -> None:
    from topicflow.state.join_stores import InMemoryJoinWindowStore
    from topicflow.state.rocksdb_join_store import RocksDBJoinWindowStore

    string = Serdes.String()
    on_disk = RocksDBJoinWindowStore("s", tmp_path / "s", 10_000, string, string)
    in_memory = InMemoryJoinWindowStore("s", 10_000)
    puts = [
        ("a", "1", 5),
        ("ab", "2", 5),
        ("a", "3", 5),
        ("a", None, 6),
        ("a", "4", 9),
        ("a", "5", 1),
    ]
    for store in (on_disk, in_memory):
        for key, value, timestamp in puts:
            store.put(key, value, timestamp)
        assert store.fetch_range("a", 0, 10) == [(1, "5"), (5, "1"), (5, "3"), (9, "4")]
        assert store.fetch_range("ab", 5, 5) == [(5, "2")]
        store.put("a", "6", 20_000)  # expires everything at or before 10_000
        assert store.fetch_range("a", 0, 30_000) == [(20_000, "6")]
    on_disk.close()
    reopened = RocksDBJoinWindowStore("s", tmp_path / "s", 10_000, string, string)
    reopened.restore_batch([(b"a", 20_000, b"7"), (b"a", 20_000, None)])
    assert reopened.fetch_range("a", 0, 30_000) == [(20_000, "6"), (20_000, "7")]
    reopened.close()


def test_a_table_join_refuses_join_windows() -> None:
    builder = StreamsBuilder()
    left, _right = _both(builder)
    with pytest.raises(TopologyError, match="takes Joined, not JoinWindows"):
        windows = JoinWindows.of_time_difference_and_grace(timedelta(seconds=1), timedelta(0))
        left.join(builder.table("tin"), joiner, windows)  # type: ignore[call-overload]


def test_rocksdb_join_window_store_deletes_whole_expired_segments(tmp_path: Path) -> None:
    from topicflow.state.rocksdb_join_store import RocksDBJoinWindowStore

    string = Serdes.String()
    store = RocksDBJoinWindowStore("s", tmp_path / "s", 200_000, string, string)  # 100 s segments
    for timestamp in (50_000, 150_000, 250_000):
        store.put("a", str(timestamp), timestamp)
    store.put("b", "x", 360_000)  # hides everything at or before 160 s, deletes segment 0
    assert store.fetch_range("a", 0, 400_000) == [(250_000, "250000")]
    assert len(list(store._db.keys())) == 3
    store.put("b", "y", 500_000)  # deletes segments 1 and 2
    assert len(list(store._db.keys())) == 2
    assert [(k, t) for k, t, _v in store.all()] == [("b", 360_000), ("b", 500_000)]
    store.close()
