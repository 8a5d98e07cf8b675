"""PartitionGroup: a task reading several partitions processes their records in
timestamp order, waits for an empty partition as max_task_idle_ms says (KIP-695),
commits only what it processed, and drops its queues when it gives its partitions up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from topicflow import (
    Consumed,
    KafkaStreams,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TopologyTestDriver,
)
from topicflow.brokers.base import OFFSET_INVALID, TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.runtime.partition_group import ConsumerLag
from topicflow.runtime.replay import origin_header, origin_id


def _config(application_id: str, **overrides: Any) -> StreamsConfig:
    settings: dict[str, Any] = {
        "application_id": application_id,
        "default_key_serde": Serdes.String(),
        "default_value_serde": Serdes.String(),
        "commit_interval_ms": 50,
        "poll_ms": 10,
        **overrides,
    }
    return StreamsConfig(**settings)


class Seen:
    """The values a topology's `peek` saw, in order, from the stream worker's thread."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, _key: Any, value: str) -> None:
        with self._lock:
            self.values.append(value)

    def wait_for(self, count: int, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.values) < count:
            assert time.monotonic() < deadline, f"saw {self.values}, expected {count} records"
            time.sleep(0.01)
        with self._lock:
            return list(self.values)


def _merge(seen: Seen) -> StreamsBuilder:
    """One source reading two topics: one task per partition number reads both."""
    builder = StreamsBuilder()
    builder.stream(["left", "right"]).peek(seen).to("out")
    return builder


def _broker(partitions: int = 1) -> EmbeddedBroker:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, partitions) for t in ("left", "right", "out")])
    return broker


def _run(broker: EmbeddedBroker, builder: StreamsBuilder, config: StreamsConfig) -> KafkaStreams:
    streams = KafkaStreams(builder.build(), config, broker=broker)
    streams.start()
    return streams


def _wait(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.mark.parametrize("idempotent_state", [False, True])
def test_records_fetched_out_of_order_are_processed_in_timestamp_order(
    idempotent_state: bool,
) -> None:
    broker = _broker()
    producer = broker.producer({})
    # Interleaved timestamps: whatever the consumer fetches first, a batch of one
    # topic's records is out of order with the other's.
    upstream = origin_id("upstream", "x", 0)
    for i in range(50):
        # Idempotent state: the left records as an upstream task sends them (with
        # their origin), record 10 sent twice (a replay, to be dropped).
        headers = [origin_header(upstream, i, 0)]
        for _ in range(2 if i == 10 else 1):
            producer.produce("left", f"L{2 * i}", "k", timestamp=1000 + 2 * i, headers=headers)
        producer.produce("right", f"R{2 * i + 1}", "k", timestamp=1001 + 2 * i)
    producer.flush(1)
    seen = Seen()
    # Small batches: one topic's records often arrive a batch before the other's.
    config = _config("pg-order", max_poll_records=7, idempotent_state=idempotent_state)
    streams = _run(broker, _merge(seen), config)
    try:
        values = seen.wait_for(100 if idempotent_state else 101)
    finally:
        assert streams.close(10)
    assert streams.error is None
    expected = list(range(100))
    if not idempotent_state:
        expected.insert(21, 20)  # the replayed record, processed again
    assert [int(v[1:]) for v in values] == expected
    # Only the last record went while the other partition was empty (and had no lag).
    assert streams.metrics()["enforced_processing"] == 1
    # Released records meet the task's filter of replays, as they would unqueued.
    assert streams.metrics()["duplicates_skipped"] == (1 if idempotent_state else 0)


def test_a_task_waits_max_task_idle_ms_for_an_empty_partition_then_proceeds() -> None:
    broker = _broker()
    seen = Seen()
    streams = _run(broker, _merge(seen), _config("pg-idle", max_task_idle_ms=1000))
    try:
        _wait(lambda: bool(streams.tasks()["pg-idle-StreamWorker-1"]))
        producer = broker.producer({})
        producer.produce("left", "L20", "k", timestamp=20)
        producer.flush(1)
        time.sleep(0.5)
        # Within the idle time: a record of the empty partition, earlier, goes first.
        right_came = time.monotonic()
        producer.produce("right", "R10", "k", timestamp=10)
        producer.flush(1)
        assert seen.wait_for(1) == ["R10"]
        # The right partition is empty again: L20 waits for it max_task_idle_ms
        # anew (not what was left of the first wait), then goes anyway.
        assert seen.wait_for(2) == ["R10", "L20"]
        waited_again = time.monotonic() - right_came
        # The task had nothing left: the next left record waits a whole idle time.
        started = time.monotonic()
        producer.produce("left", "L30", "k", timestamp=30)
        producer.flush(1)
        assert seen.wait_for(3)[2] == "L30"
        waited = time.monotonic() - started
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert 0.9 <= waited_again < 5
    assert 0.9 <= waited < 5
    assert streams.metrics()["enforced_processing"] == 2


@pytest.mark.parametrize("idle", [0, -1])
def test_with_max_task_idle_ms_0_or_minus_1_a_task_does_not_wait_for_an_empty_partition(
    idle: int,
) -> None:
    broker = _broker()
    seen = Seen()
    streams = _run(broker, _merge(seen), _config(f"pg-idle{idle}", max_task_idle_ms=idle))
    try:
        _wait(lambda: bool(streams.tasks()[f"pg-idle{idle}-StreamWorker-1"]))
        producer = broker.producer({})
        started = time.monotonic()
        producer.produce("left", "L1", "k", timestamp=1)
        producer.flush(1)
        seen.wait_for(1)
        assert time.monotonic() - started < 0.4
    finally:
        assert streams.close(10)
    assert streams.error is None
    # 0: the right partition has no lag, so the task proceeds: enforced processing
    # (as Kafka Streams counts it); -1: it never waits, nothing is enforced.
    assert streams.metrics()["enforced_processing"] == (1 if idle == 0 else 0)


def test_only_processed_records_are_committed() -> None:
    broker = _broker()
    seen = Seen()
    config = _config("pg-commit", max_task_idle_ms=60_000)
    streams = _run(broker, _merge(seen), config)
    try:
        _wait(lambda: bool(streams.tasks()["pg-commit-StreamWorker-1"]))
        producer = broker.producer({})
        for i in range(3):
            producer.produce("left", f"L{i}", "k", timestamp=10 + i)
        producer.flush(1)
        time.sleep(0.4)  # several commit intervals: the left records wait for the right
        assert seen.values == []
        assert broker.committed_offsets("pg-commit").get(("left", 0), 0) == 0
        producer.produce("right", "R100", "k", timestamp=100)
        producer.flush(1)
        assert seen.wait_for(3) == ["L0", "L1", "L2"]
        # The right record is later than any left one: it waits for the left partition.
        _wait(lambda: broker.committed_offsets("pg-commit").get(("left", 0)) == 3)
        time.sleep(0.2)
        assert broker.committed_offsets("pg-commit").get(("right", 0), 0) == 0
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert seen.values == ["L0", "L1", "L2"]


def test_queued_records_are_dropped_on_close_and_read_again_by_the_next_owner() -> None:
    broker = _broker(partitions=2)
    config = _config("pg-rebalance", max_task_idle_ms=60_000)
    producer = broker.producer({})
    first_seen = Seen()
    first = _run(broker, _merge(first_seen), config)
    try:
        _wait(lambda: len(first.tasks()["pg-rebalance-StreamWorker-1"]) == 2)
        for p in (0, 1):
            for i in range(3):
                producer.produce("left", f"L{p}.{i}", "k", partition=p, timestamp=10 + i)
        producer.flush(1)
        time.sleep(0.3)  # queued, waiting for the right partitions
        assert first_seen.values == []
        # A second member joins: the first gives up its tasks (eager rebalance),
        # dropping what it queued; each partition's owner reads it again.
        second_seen = Seen()
        second = _run(broker, _merge(second_seen), config)
        try:
            _wait(
                lambda: (
                    len(second.tasks()["pg-rebalance-StreamWorker-1"]) == 1
                    and len(first.tasks()["pg-rebalance-StreamWorker-1"]) == 1
                )
            )
            for p in (0, 1):
                producer.produce("right", f"R{p}", "k", partition=p, timestamp=100)
            producer.flush(1)
            _wait(lambda: len(first_seen.values) + len(second_seen.values) >= 6)
            time.sleep(0.3)  # any duplicate would show now
        finally:
            assert second.close(10)
    finally:
        assert first.close(10)
    assert first.error is None and second.error is None
    processed = sorted(first_seen.values + second_seen.values)
    assert processed == sorted(f"L{p}.{i}" for p in (0, 1) for i in range(3))


def test_a_task_reading_one_partition_has_no_partition_group() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("left", 2), TopicSpec("out", 2)])
    seen = Seen()
    builder = StreamsBuilder()
    builder.stream("left").peek(seen).to("out")
    streams = _run(broker, builder, _config("pg-single"))
    try:
        worker = streams._workers[0]
        _wait(lambda: len(worker.tasks) == 2)
        assert worker._manager.groups == []
        routes = [
            r for by_partition in worker._manager.routes.values() for r in by_partition.values()
        ]
        assert len(routes) == 2 and all(r.screen is None for r in routes)
    finally:
        assert streams.close(10)


def test_the_test_driver_processes_each_piped_record_at_once() -> None:
    seen = Seen()
    with TopologyTestDriver(_merge(seen).build(), _config("pg-driver")) as driver:
        left = driver.create_input_topic("left", Serdes.String(), Serdes.String())
        right = driver.create_input_topic("right", Serdes.String(), Serdes.String())
        left.pipe_input("k", "L20", timestamp=20)
        assert seen.values == ["L20"]
        right.pipe_input("k", "R10", timestamp=10)
        assert seen.values == ["L20", "R10"]


def test_a_full_queue_pauses_its_partition_until_drained() -> None:
    broker = _broker()
    producer = broker.producer({})
    for i in range(60):
        producer.produce("left", f"L{i}", "k", timestamp=10 + i)
    producer.flush(1)
    seen = Seen()
    config = _config(
        "pg-bound", max_task_idle_ms=60_000, buffered_records_per_partition=5, max_poll_records=4
    )
    streams = _run(broker, _merge(seen), config)
    try:
        worker = streams._workers[0]
        _wait(lambda: bool(worker._manager.groups) and worker._manager.groups[0].buffered > 5)
        time.sleep(0.3)
        group = worker._manager.groups[0]
        # Paused past the bound: at most one batch more than it arrived.
        assert 5 < group.buffered <= 5 + 4
        assert worker._manager.is_full("left", 0)
        assert seen.values == []
        producer.produce("right", "R", "k", timestamp=1000)
        producer.flush(1)
        # Drained below the bound, the partition reads on: every record comes.
        assert seen.wait_for(60) == [f"L{i}" for i in range(60)]
        assert not worker._manager.is_full("left", 0)
    finally:
        assert streams.close(10)
    assert streams.error is None


def test_a_stream_table_join_does_not_depend_on_which_topic_is_fetched_first() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, 1) for t in ("users", "clicks", "enriched")])
    producer = broker.producer({})
    # The clicks are in the log first, but the users' rows are older: in timestamp
    # order every click meets its user's row.
    for i in range(40):
        producer.produce("clicks", f"p{i}", f"u{i}", timestamp=1000 + i)
    for i in range(40):
        producer.produce("users", f"team{i % 4}", f"u{i}", timestamp=1 + i)
    producer.flush(1)
    builder = StreamsBuilder()
    table = builder.table("users")
    builder.stream("clicks").join(table, lambda page, team: f"{page}@{team}").to("enriched")
    streams = _run(broker, builder, _config("pg-join", max_poll_records=6))
    try:
        _wait(lambda: len(broker.read_all("enriched")) >= 40)
        time.sleep(0.1)
    finally:
        assert streams.close(10)
    assert streams.error is None
    found = [(k, v) for _p, _o, k, v, _t, _h in broker.read_all("enriched")]
    assert found == [(f"u{i}".encode(), f"p{i}@team{i % 4}".encode()) for i in range(40)]


class _LibrdkafkaLike:
    """A consumer that, as librdkafka's, knows no position before a record is returned."""

    def __init__(self, low: int, high: int, committed: int) -> None:
        self.watermarks = (low, high)
        self.committed_offset = committed
        self.committed_calls = 0

    def get_watermark_offsets(self, tp: Any, cached: bool = False) -> tuple[int, int]:
        assert cached  # no broker request per loop turn
        return self.watermarks

    def position(self, partitions: list[Any]) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID) for tp in partitions]

    def committed(self, partitions: list[Any], timeout: float) -> list[Any]:
        self.committed_calls += 1
        return [TopicPartition(tp.topic, tp.partition, self.committed_offset) for tp in partitions]


def test_the_lag_of_a_partition_no_record_was_returned_from_counts_from_the_committed_offset() -> (
    None
):
    consumer = _LibrdkafkaLike(0, 8, committed=5)
    lag = ConsumerLag(consumer, "earliest")  # type: ignore[arg-type]
    assert lag("right", 0, None) == 3
    consumer.watermarks = (0, 5)
    assert lag("right", 0, None) == 0  # caught up: a task need not wait for it
    assert consumer.committed_calls == 1  # asked once
    assert lag("right", 0, 7) == 0  # records were returned since: their position counts
    consumer.watermarks = (OFFSET_INVALID, OFFSET_INVALID)
    assert lag("right", 0, 7) is None  # no watermark yet: not known
    # Nothing committed: where auto_offset_reset starts.
    consumer = _LibrdkafkaLike(2, 8, committed=OFFSET_INVALID)
    assert ConsumerLag(consumer, "earliest")("right", 0, None) == 6  # type: ignore[arg-type]
    assert ConsumerLag(consumer, "latest")("right", 0, None) == 0  # type: ignore[arg-type]


def test_records_are_ordered_by_the_timestamp_their_extractor_gives() -> None:
    broker = _broker()
    producer = broker.producer({})
    # The event time is in the value; the records' own timestamps say the reverse.
    for i in range(10):
        producer.produce("left", f"{2 * i}", "k", timestamp=100 - 2 * i)
        producer.produce("right", f"{2 * i + 1}", "k", timestamp=100 - 2 * i - 1)
    producer.produce("right", b"\xff", "k", timestamp=1000)  # not a string: skipped
    producer.produce("right", "99", "k", timestamp=1)
    producer.flush(1)
    seen = Seen()
    builder = StreamsBuilder()
    consumed = Consumed(timestamp_extractor=lambda _ts, _k, value, _time: int(value))
    builder.stream(["left", "right"], consumed).peek(seen).to("out")
    streams = _run(broker, builder, _config("pg-extractor", max_poll_records=5))
    try:
        values = seen.wait_for(21)
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert [int(v) for v in values] == [*range(20), 99]
    assert streams.metrics()["deserialization_errors"] == 1
