"""Idempotent state: exact counts after a crash under at-least-once, on the embedded broker.

A worker dies mid-batch (a poison record fails processing, log_and_fail):
what it processed since its last commit is in the changelog, or in the
repartition topic, but its offsets are not committed. The next run replays
those records. Without idempotent state it counts them twice (the contrast
runs show it does, so these tests can fail); with it, counts equal ground
truth computed from the input.
"""

from __future__ import annotations

import collections
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from topicflow import JoinWindows, KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.options import BufferConfig, Materialized, Produced, Suppressed
from topicflow.errors import ConfigError
from topicflow.runtime.kafka_streams import State
from topicflow.runtime.replay import (
    DUPLICATE,
    ORIGIN_HEADER,
    OriginFilter,
    origin_header,
    origin_id,
)

APP = "idem-test"
POISON = "boom"


class Poison:
    """Fails the processing of the poison record while armed (the first run)."""

    def __init__(self) -> None:
        self.armed = True

    def __call__(self, _key: Any, value: Any) -> None:
        if self.armed and value == POISON:
            raise RuntimeError("poison record: the worker dies here")


def _topology(poison: Poison, repartition: bool) -> Any:
    builder = StreamsBuilder()
    stream = builder.stream("in").peek(poison)
    grouped = stream.group_by(lambda _k, v: v[:2]) if repartition else stream.group_by_key()
    (
        grouped.count(Materialized.as_("counts"))
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    return builder.build()


def _table_topology(poison: Poison, _repartition: bool) -> Any:
    """A KTable aggregation: each key's latest value, counted by its first two
    characters (KGroupedTable: an update leaves its old group for its new one)."""
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .peek(poison)
        .to_table(materialized=Materialized.as_("latest"))
        .group_by(lambda k, v: (v[:2], v))
        .count(Materialized.as_("counts"))
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    return builder.build()


def _config(state_dir: Path, idempotent: bool) -> StreamsConfig:
    return StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
        processing_exception_handler="log_and_fail",
        idempotent_state=idempotent,
    )


def _produce(broker: EmbeddedBroker, records: list[tuple[str, str]]) -> None:
    producer = broker.producer({})
    for key, value in records:
        producer.produce("in", value.encode(), key.encode())
    producer.flush(1)


def _latest_counts(broker: EmbeddedBroker) -> dict[str, int]:
    latest: dict[str, int] = {}
    for _partition, _offset, key, value, _ts, _headers in sorted(
        broker.read_all("out"), key=lambda r: (r[0], r[1])
    ):
        assert key is not None and value is not None
        latest[key.decode()] = int.from_bytes(value, "big", signed=True)
    return latest


def _wait(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _crash_then_recover(
    tmp_path: Path, idempotent: bool, repartition: bool, build: Any = _topology
) -> dict[str, Any]:
    """Run 1 commits the first records, then dies on the poison record mid-batch;
    run 2 (poison disarmed) replays from the last commit and finishes the input."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    first = [(f"k{i % 5}", f"v{i % 3}-{i}") for i in range(100)]
    _produce(broker, first)
    poison = Poison()
    topology = build(poison, repartition)
    config = _config(tmp_path, idempotent)
    crashed = KafkaStreams(topology, config, broker=broker)
    crashed.start()
    _wait(lambda: broker.committed_offsets(APP).get(("in", 0)) == 100, "the first commit")
    # One batch: records before the poison are processed (and sent on), not committed.
    second = [(f"k{i % 5}", f"v{i % 3}-{i}") for i in range(100, 300)]
    second.insert(150, ("k0", POISON))
    _produce(broker, second)
    _wait(lambda: crashed.state in (State.ERROR, State.NOT_RUNNING), "the crash")
    crashed.close(10)
    assert crashed.error is not None
    assert broker.committed_offsets(APP)[("in", 0)] < 100 + len(second)
    poison.armed = False
    recovered = KafkaStreams(build(poison, repartition), config, broker=broker)
    recovered.start()
    total = len(first) + len(second)
    _wait(lambda: broker.committed_offsets(APP).get(("in", 0)) == total, "the whole input")
    if repartition:
        topics = [t for t in broker.topics() if t.endswith("-repartition")]
        repartition_topic = topics[0]
        _wait(
            lambda: (
                sum(
                    o
                    for (t, _p), o in broker.committed_offsets(APP).items()
                    if t == repartition_topic
                )
                == sum(broker.end_offsets(repartition_topic))
            ),
            "the repartition topic",
        )
    assert recovered.close(10)
    assert recovered.error is None
    records = first + second
    if build is _table_topology:
        latest = {key: value for key, value in records}
        truth = collections.Counter(value[:2] for value in latest.values())
    elif repartition:
        truth = collections.Counter(value[:2] for _key, value in records)
    else:
        truth = collections.Counter(key for key, _value in records)
    return {"counts": _latest_counts(broker), "truth": dict(truth), **recovered.metrics()}


@pytest.mark.parametrize("repartition", [False, True], ids=["same-task", "through-repartition"])
def test_a_replay_after_a_crash_counts_each_record_once(tmp_path: Path, repartition: bool) -> None:
    result = _crash_then_recover(tmp_path, idempotent=True, repartition=repartition)
    assert result["counts"] == result["truth"]
    if repartition:
        # The upstream task replayed its sends: the downstream dropped them by origin.
        assert result["duplicates_skipped"] > 0
    else:
        # The changelog held the replayed records' effects: skipped per key.
        assert result["replayed_updates_skipped"] > 0


@pytest.mark.parametrize("repartition", [False, True], ids=["same-task", "through-repartition"])
def test_without_idempotent_state_the_same_crash_over_counts(
    tmp_path: Path, repartition: bool
) -> None:
    """The contrast: the scenario above does replay records into the counts."""
    result = _crash_then_recover(tmp_path, idempotent=False, repartition=repartition)
    assert sum(result["counts"].values()) > sum(result["truth"].values())


def test_origins_survive_a_restart_in_the_commit_metadata(tmp_path: Path) -> None:
    """Replays that arrive after the reading task restarted are still dropped."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    upstream = origin_id("upstream-app", "lines", 0)
    producer = broker.producer({})

    def send(offsets: range) -> None:
        for offset in offsets:
            producer.produce(
                "in",
                f"v{offset}".encode(),
                f"k{offset % 4}".encode(),
                headers=[origin_header(upstream, offset, 0)],
            )
        producer.flush(1)

    config = _config(tmp_path, idempotent=True)
    poison = Poison()
    poison.armed = False
    send(range(0, 50))
    streams = KafkaStreams(_topology(poison, repartition=False), config, broker=broker)
    streams.start()
    _wait(lambda: broker.committed_offsets(APP).get(("in", 0)) == 50, "the first commit")
    assert streams.close(10)
    send(range(40, 60))  # upstream replayed 40..49 after its own crash, then went on
    streams = KafkaStreams(_topology(poison, repartition=False), config, broker=broker)
    streams.start()
    _wait(lambda: broker.committed_offsets(APP).get(("in", 0)) == 70, "the replay")
    assert streams.close(10)
    assert streams.metrics()["duplicates_skipped"] == 10
    truth = collections.Counter(f"k{offset % 4}" for offset in range(60))
    assert _latest_counts(broker) == dict(truth)


def test_outputs_carry_origins_and_replays_repeat_them(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("words", 1)])
    builder = StreamsBuilder()
    builder.stream("in").flat_map_values(lambda line: line.split()).to("words")
    config = _config(tmp_path, idempotent=True)
    _produce(broker, [("a", "x y z"), ("b", "w")])
    streams = KafkaStreams(builder.build(), config, broker=broker)
    streams.start()
    _wait(lambda: sum(broker.end_offsets("words")) == 4, "the words")
    assert streams.close(10)
    origin = origin_id(APP, "in", 0)
    stamps = [
        dict(headers or [])[ORIGIN_HEADER]
        for *_rest, headers in sorted(broker.read_all("words"), key=lambda r: r[1])
    ]
    assert stamps == [
        origin_header(origin, 0, 0)[1],
        origin_header(origin, 0, 1)[1],
        origin_header(origin, 0, 2)[1],
        origin_header(origin, 1, 0)[1],
    ]


def test_origin_filter_keeps_the_highest_position_per_origin() -> None:
    a, b = origin_id("app", "t", 0), origin_id("app", "t", 1)
    origins = OriginFilter()
    assert origins.screen(None, [origin_header(a, 5, 0), ("user", b"1")]) == [("user", b"1")]
    assert origins.screen(None, [origin_header(a, 5, 0)]) is DUPLICATE and origins.duplicates == 1
    assert origins.screen(None, [origin_header(a, 5, 1)]) is None  # a later output of record 5
    assert origins.screen(None, [origin_header(b, 0, 0)]) is None  # another origin
    assert origins.screen(None, [origin_header(a, 4, 9)]) is DUPLICATE and origins.duplicates == 2
    assert origins.screen(None, None) is None
    restored = OriginFilter.decode(origins.encode())
    assert restored.positions == origins.positions
    assert OriginFilter.decode("written by someone else").positions == {}


def test_a_replay_after_a_crash_leaves_a_table_aggregation_exact(tmp_path: Path) -> None:
    result = _crash_then_recover(tmp_path, True, repartition=True, build=_table_topology)
    # A group every row has left is counted down to 0 (one the cache never saw
    # filled, such as the poison record's, is never sent).
    assert {g: n for g, n in result["counts"].items() if n} == result["truth"]
    assert result["duplicates_skipped"] + result["replayed_updates_skipped"] > 0


def test_without_idempotent_state_a_table_aggregation_goes_wrong(tmp_path: Path) -> None:
    result = _crash_then_recover(tmp_path, False, repartition=True, build=_table_topology)
    assert {g: n for g, n in result["counts"].items() if n} != result["truth"]


@pytest.mark.parametrize("operation", ["self-join", "suppress"])
def test_stores_a_replay_would_not_leave_exact_are_refused_at_start(
    tmp_path: Path, operation: str
) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1)])
    builder = StreamsBuilder()
    stream = builder.stream("in")
    if operation == "self-join":
        windows = JoinWindows.of_time_difference_and_grace(timedelta(seconds=5), timedelta(0))
        stream.join(stream, lambda a, b: a + b, windows).to("out")
    else:
        until = Suppressed.until_time_limit(timedelta(seconds=5), BufferConfig.unbounded())
        stream.to_table().suppress(until).to_stream().to("out")
    streams = KafkaStreams(builder.build(), _config(tmp_path, idempotent=True), broker=broker)
    with pytest.raises(ConfigError, match="which a replay after a crash would not leave exact"):
        streams.start()


def test_a_stateful_task_reading_two_topics_is_refused_at_start(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("a", 1), TopicSpec("b", 1)])
    builder = StreamsBuilder()
    builder.stream(["a", "b"]).group_by_key().count()
    streams = KafkaStreams(builder.build(), _config(tmp_path, idempotent=True), broker=broker)
    with pytest.raises(ConfigError, match="idempotent_state: sub-topology 0 keeps state"):
        streams.start()


def test_a_replayed_keyless_output_lands_in_the_partition_of_its_first_copy(
    tmp_path: Path,
) -> None:
    """Keyless records are spread by origin, not at random: the reader of that
    partition is the one that knows the first copy and drops the replay."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("words", 3)])
    producer = broker.producer({})
    for i in range(20):
        producer.produce("in", f"w{i} x{i} y{i} z{i}".encode())
    producer.flush(1)
    builder = StreamsBuilder()
    builder.stream("in").flat_map_values(lambda line: line.split()).to("words")
    config = _config(tmp_path, idempotent=True)
    for _run in range(2):  # the second run replays everything, as after a crash
        streams = KafkaStreams(builder.build(), config, broker=broker)
        streams.start()
        _wait(lambda: broker.committed_offsets(APP).get(("in", 0)) == 20, "the lines")
        assert streams.close(10)
        broker._groups[APP].committed.clear()
    partitions: dict[bytes, set[int]] = collections.defaultdict(set)
    for partition, _offset, _key, _value, _ts, headers in broker.read_all("words"):
        partitions[dict(headers or [])[ORIGIN_HEADER]].add(partition)
    assert len(partitions) == 80  # each word twice, under one origin and position
    assert all(len(found) == 1 for found in partitions.values())
    # Spread over every partition, not piled on one.
    assert {p for found in partitions.values() for p in found} == {0, 1, 2}
