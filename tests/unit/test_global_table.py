"""GlobalKTable: describe(), the test driver, and the runtime on the embedded broker
(the join's semantics: the conformance suite, which runs it against Kafka Streams)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    Consumed,
    KafkaStreams,
    Materialized,
    Named,
    Processor,
    ProcessorContext,
    Record,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.cli.apps import App
from topicflow.cli.topics import topic_specs
from topicflow.errors import HandlerFailed, TopologyError


def _config(application_id: str, state_dir: Path | None = None, **settings: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        **({"state_dir": str(state_dir)} if state_dir is not None else {}),
        **settings,
    )


def _first_letter(_key: Any, value: str | None) -> str | None:
    return value[0] if value else None


# -- describe ---------------------------------------------------------------------------


def test_describe_prints_the_global_store_as_a_sub_topology_without_tasks() -> None:
    # Kafka Streams 4.1's describe() of the same topology, names and layout: both
    # joins are named KSTREAM-LEFTJOIN, the join has no store of its own, and the
    # global store's description ends without the blank line.
    builder = StreamsBuilder()
    stream = builder.stream("in")
    table = builder.global_table("gin")
    stream.join(table, _first_letter, lambda v, gv: f"{v}+{gv}").to("out")
    assert str(builder.build().describe()) == (
        "Topologies:\n"
        "   Sub-topology: 0\n"
        "    Source: KSTREAM-SOURCE-0000000000 (topics: [in])\n"
        "      --> KSTREAM-LEFTJOIN-0000000004\n"
        "    Processor: KSTREAM-LEFTJOIN-0000000004 (stores: [])\n"
        "      --> KSTREAM-SINK-0000000005\n"
        "      <-- KSTREAM-SOURCE-0000000000\n"
        "    Sink: KSTREAM-SINK-0000000005 (topic: out)\n"
        "      <-- KSTREAM-LEFTJOIN-0000000004\n"
        "\n"
        "  Sub-topology: 1 for global store (will not generate tasks)\n"
        "    Source: KSTREAM-SOURCE-0000000002 (topics: [gin])\n"
        "      --> KTABLE-SOURCE-0000000003\n"
        "    Processor: KTABLE-SOURCE-0000000003 (stores: [gin-STATE-STORE-0000000001])\n"
        "      --> none\n"
        "      <-- KSTREAM-SOURCE-0000000002\n"
    )
    assert table.store_name == "gin-STATE-STORE-0000000001"
    assert table.queryable_store_name is None


def test_describe_numbers_global_stores_among_the_sub_topologies_and_names_as_kafka() -> None:
    builder = StreamsBuilder()
    table = builder.global_table("gin", Consumed.as_("users"), Materialized.as_("gstore"))
    stream = builder.stream("in")
    stream.map_values(str.upper).left_join(
        table, lambda k, v: v, lambda k, v, gv: v, Named("lj"), with_key=True
    ).to("out")
    builder.stream("in2").to("out2")
    assert str(builder.build().describe()) == (
        "Topologies:\n"
        "   Sub-topology: 0 for global store (will not generate tasks)\n"
        "    Source: users-source (topics: [gin])\n"
        "      --> users\n"
        "    Processor: users (stores: [gstore])\n"
        "      --> none\n"
        "      <-- users-source\n"
        "  Sub-topology: 1\n"
        "    Source: KSTREAM-SOURCE-0000000002 (topics: [in])\n"
        "      --> KSTREAM-MAPVALUES-0000000003\n"
        "    Processor: KSTREAM-MAPVALUES-0000000003 (stores: [])\n"
        "      --> lj\n"
        "      <-- KSTREAM-SOURCE-0000000002\n"
        "    Processor: lj (stores: [])\n"
        "      --> KSTREAM-SINK-0000000005\n"
        "      <-- KSTREAM-MAPVALUES-0000000003\n"
        "    Sink: KSTREAM-SINK-0000000005 (topic: out)\n"
        "      <-- lj\n"
        "\n"
        "  Sub-topology: 2\n"
        "    Source: KSTREAM-SOURCE-0000000006 (topics: [in2])\n"
        "      --> KSTREAM-SINK-0000000007\n"
        "    Sink: KSTREAM-SINK-0000000007 (topic: out2)\n"
        "      <-- KSTREAM-SOURCE-0000000006\n"
        "\n"
    )
    assert table.queryable_store_name == "gstore"


def test_a_global_table_runs_as_no_task_and_has_no_internal_topic() -> None:
    builder = StreamsBuilder()
    stream = builder.stream("in").select_key(_first_letter)
    stream.join(builder.global_table("gin"), lambda k, v: k, lambda v, gv: gv).to("out")
    topology = builder.build()
    # No repartition before the join, though the key changed: every instance has every key.
    assert topology.internal_topics == {}
    assert [s.source_topics for s in topology.subtopologies()] == [["in"]]
    assert [s.source_topics for s in topology.global_subtopologies()] == [["gin"]]
    # `topicflow topics` creates the global topic (a user topic) and nothing for its store.
    names = [s.name for s in topic_specs(App("x", topology, None), 4, 1, "app")]
    assert sorted(names) == ["gin", "in", "out"]


def test_a_topic_is_read_once_by_a_stream_or_a_global_table() -> None:
    builder = StreamsBuilder()
    builder.stream("gin")
    with pytest.raises(TopologyError, match="already read"):
        builder.global_table("gin")


# -- the test driver --------------------------------------------------------------------


def _join_driver(left: bool) -> tuple[TopologyTestDriver, Any, Any, Any]:
    builder = StreamsBuilder()
    table = builder.global_table("gin", materialized=Materialized.as_("users"))
    stream = builder.stream("in")
    join = stream.left_join if left else stream.join
    join(table, _first_letter, lambda v, gv: f"{v}+{gv}").to("out")
    driver = TopologyTestDriver(builder.build(), _config("global-driver"))
    return (
        driver,
        driver.create_input_topic("gin"),
        driver.create_input_topic("in"),
        driver.create_output_topic("out"),
    )


def test_the_driver_updates_the_global_store_at_once() -> None:
    driver, users, clicks, out = _join_driver(left=False)
    users.pipe_input("a", "Ann", timestamp=5)
    clicks.pipe_input("k1", "a1", timestamp=10)
    users.pipe_input("a", "Alice", timestamp=20)
    clicks.pipe_input("k2", "a2", timestamp=30)
    users.pipe_input("a", None, timestamp=40)  # a null value deletes
    clicks.pipe_input("k3", "a3", timestamp=50)
    clicks.pipe_input("k4", "b4", timestamp=60)  # no "b"
    records = out.read_records_to_list()
    # The result keeps the stream record's key and timestamp.
    assert [(r.key, r.value, r.timestamp) for r in records] == [
        ("k1", "a1+Ann", 10),
        ("k2", "a2+Alice", 30),
    ]
    store = driver.get_key_value_store("users")
    users.pipe_input("b", "Bob", timestamp=70)
    assert store.get("b") == "Bob" and store.get_with_timestamp("b") == ("Bob", 70)
    assert store.get("a") is None


def test_the_driver_drops_and_counts_null_keys_and_bad_records_of_a_global_topic() -> None:
    builder = StreamsBuilder()
    table = builder.global_table(
        "gin", Consumed.with_(Serdes.String(), Serdes.Long()), Materialized.as_("g")
    )
    builder.stream("in").left_join(table, lambda k, v: k, lambda v, gv: f"{v}+{gv}").to("out")
    driver = TopologyTestDriver(builder.build(), _config("global-bad"))
    driver.pipe_raw("gin", None, (7).to_bytes(8, "big"), 1)
    driver.pipe_raw("gin", b"a", b"not a long", 2)
    driver.pipe_raw("gin", b"b", (9).to_bytes(8, "big"), 3)
    assert driver.metrics.dropped_records == 1
    assert driver.metrics.deserialization_errors == 1
    assert list(driver.get_key_value_store("g").all()) == [("b", 9)]


def test_a_left_join_joins_records_without_a_table_value_and_drops_null_values() -> None:
    driver, users, clicks, out = _join_driver(left=True)
    users.pipe_input("a", "Ann")
    clicks.pipe_input("k1", "a1")
    clicks.pipe_input("k2", "")  # the selector gives None: joined with no value
    clicks.pipe_input("k3", None)  # a null value: dropped
    assert out.read_key_values_to_list() == [("k1", "a1+Ann"), ("k2", "+None")]
    assert driver.metrics.dropped_records == 1


# -- the runtime on the embedded broker -------------------------------------------------


def _produce(broker: EmbeddedBroker, topic: str, pairs: Sequence[tuple[str, str | None]]) -> None:
    producer = broker.producer({})
    for key, value in pairs:
        producer.produce(topic, None if value is None else value.encode(), key.encode())
    producer.flush(1)


def _outputs(broker: EmbeddedBroker, topic: str) -> dict[str, str]:
    return {
        k.decode(): v.decode()
        for _p, _o, k, v, _t, _h in broker.read_all(topic)
        if k is not None and v is not None
    }


def _wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class _FirstSight(Processor[Any, Any, Any, Any]):
    """Notes how many rows the global store has when its task's first record arrives."""

    def __init__(self, seen: list[int]) -> None:
        self._seen = seen
        self._first = True

    def init(self, context: ProcessorContext[Any, Any]) -> None:
        self._store = context.get_state_store("team-store")

    def process(self, record: Record[Any, Any]) -> None:
        if self._first:
            self._first = False
            self._seen.append(self._store.approximate_num_entries())


def _join_topology(persistent: bool = False, seen: list[int] | None = None) -> Any:
    builder = StreamsBuilder()
    table = builder.global_table(
        "teams", materialized=Materialized("team-store", persistent=persistent)
    )
    clicks = builder.stream("clicks")
    # The click's value names the user; the result keeps the click's key.
    clicks.join(table, lambda k, v: v, lambda v, team: f"{v}@{team}").to("enriched")
    if seen is not None:
        # A processor reads a global store without being connected to it (as in Kafka).
        clicks.process(lambda: _FirstSight(seen))
    return builder.build()


def test_a_fresh_instance_loads_the_whole_global_table_before_its_first_record() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("teams", 4), TopicSpec("clicks", 2), TopicSpec("enriched", 2)])
    users = {f"u{i}": f"team{i % 5}" for i in range(200)}
    _produce(broker, "teams", list(users.items()))
    # Every click is there before start too: the workers would process them at
    # once, so an inner join with a table not yet whole would drop some.
    clicks = [(f"c{i}", f"u{i}") for i in range(200)]
    _produce(broker, "clicks", clicks)
    # Two workers (threads here), one global stream thread for both.
    config = _config("global-fresh", num_stream_threads=2)
    seen: list[int] = []
    streams = KafkaStreams(_join_topology(seen=seen), config, broker=broker)
    streams.start()
    try:
        _wait_for(lambda: len(_outputs(broker, "enriched")) == len(clicks))
        assert _outputs(broker, "enriched") == {c: f"{u}@{users[u]}" for c, u in clicks}
        # Each task's first record saw the whole table (two tasks, one per partition).
        assert seen == [len(users), len(users)]
        # Updates after start are seen: the global thread applies them on its own,
        # so click for the new user until a click joins.
        _produce(broker, "teams", [("u999", "late-team")])
        deadline = time.monotonic() + 15
        n = 0
        while "u999@late-team" not in _outputs(broker, "enriched").values():
            assert time.monotonic() < deadline
            n += 1
            _produce(broker, "clicks", [(f"late{n}", "u999")])
            time.sleep(0.05)
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert streams.metrics()["restored_records"] == len(users)


def _start_and_stop(broker: EmbeddedBroker, state_dir: Path, persistent: bool) -> dict[str, int]:
    streams = KafkaStreams(
        _join_topology(persistent), _config("global-restart", state_dir), broker=broker
    )
    streams.start()
    try:
        assert streams.state.value in ("REBALANCING", "RUNNING")
    finally:
        assert streams.close(10)
    assert streams.error is None
    return streams.metrics()


@pytest.mark.parametrize("persistent", [True, False])
def test_a_restart_reads_the_rest_of_the_topic_from_the_checkpoint_if_persistent(
    tmp_path: Path, persistent: bool
) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("teams", 4), TopicSpec("clicks", 1), TopicSpec("enriched", 1)])
    _produce(broker, "teams", [(f"u{i}", "old") for i in range(40)])
    assert _start_and_stop(broker, tmp_path, persistent)["restored_records"] == 40
    checkpoint = tmp_path / "global-restart" / "global" / ".checkpoint"
    if persistent:
        offsets = json.loads(checkpoint.read_text())
        assert sorted(offsets) == [f"teams:{p}" for p in range(4)]
        assert sum(offsets.values()) == 40
    else:
        assert not checkpoint.exists()
    _produce(broker, "teams", [("u0", "new"), ("u1", None), ("u100", "new")])
    # A persistent store reads only what came since; an in-memory one all again.
    metrics = _start_and_stop(broker, tmp_path, persistent)
    assert metrics["restored_records"] == (3 if persistent else 43)
    streams = KafkaStreams(
        _join_topology(persistent), _config("global-restart", tmp_path), broker=broker
    )
    _produce(broker, "clicks", [("c0", "u0"), ("c1", "u1"), ("c2", "u2"), ("c3", "u100")])
    streams.start()
    try:
        _wait_for(lambda: len(_outputs(broker, "enriched")) == 3)
    finally:
        assert streams.close(10)
    assert _outputs(broker, "enriched") == {"c0": "u0@new", "c2": "u2@old", "c3": "u100@new"}


def test_a_bad_global_record_is_skipped_and_counted_or_fails_the_start() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("teams", 1), TopicSpec("clicks", 1), TopicSpec("enriched", 1)])
    producer = broker.producer({})
    producer.produce("teams", b"not a long", b"u1")
    producer.produce("teams", (5).to_bytes(8, "big"), b"u2")
    producer.flush(1)

    def topology() -> Any:
        builder = StreamsBuilder()
        table = builder.global_table("teams", Consumed.with_(Serdes.String(), Serdes.Long()))
        builder.stream("clicks").join(table, lambda k, v: v, lambda v, n: f"{v}#{n}").to("enriched")
        return builder.build()

    streams = KafkaStreams(topology(), _config("global-skip"), broker=broker)
    streams.start()
    try:
        _produce(broker, "clicks", [("c1", "u1"), ("c2", "u2")])
        _wait_for(lambda: len(_outputs(broker, "enriched")) == 1)
        assert streams.metrics()["deserialization_errors"] == 1
    finally:
        assert streams.close(10)
    assert _outputs(broker, "enriched") == {"c2": "u2#5"}

    failing = KafkaStreams(
        topology(),
        _config("global-fail", deserialization_exception_handler="log_and_fail"),
        broker=broker,
    )
    with pytest.raises(HandlerFailed):
        failing.start()


def test_a_bad_global_record_after_start_under_log_and_fail_puts_the_instance_in_error() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("teams", 2), TopicSpec("clicks", 1), TopicSpec("enriched", 1)])
    builder = StreamsBuilder()
    table = builder.global_table("teams", Consumed.with_(Serdes.String(), Serdes.Long()))
    builder.stream("clicks").join(table, lambda k, v: v, lambda v, n: f"{v}#{n}").to("enriched")
    config = _config("global-fail-later", deserialization_exception_handler="log_and_fail")
    streams = KafkaStreams(builder.build(), config, broker=broker)
    streams.start()
    try:
        producer = broker.producer({})
        producer.produce("teams", b"not a long", b"u1")
        producer.flush(1)
        # The global thread stops, once: the instance goes to ERROR, no crash loop.
        assert streams.wait_until_stopped(10)
        assert streams.state.value == "ERROR"
        assert isinstance(streams.error, HandlerFailed)
    finally:
        streams.close(10)
