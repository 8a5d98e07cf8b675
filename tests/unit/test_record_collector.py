"""RecordCollector: a full producer queue delays a record, never drops or repeats it."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from topicflow.errors import StreamsException
from topicflow.runtime.record_collector import RecordCollector


class _FullThenFree:
    """Raises BufferError (queue full) a few times, as librdkafka does under backpressure."""

    def __init__(self, full_for: int) -> None:
        self.full_for = full_for
        self.produced: list[tuple[Any, ...]] = []
        self.polls = 0

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: Any = None,
        callback: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        if self.full_for:
            self.full_for -= 1
            raise BufferError("Local: Queue full")
        self.produced.append((topic, key, value, partition, timestamp))

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def test_a_full_queue_delays_the_record_until_there_is_room() -> None:
    producer = _FullThenFree(full_for=3)
    collector = RecordCollector(producer, lambda topic: 1)  # type: ignore[arg-type]
    collector.send("out", b"k", b"v", 42, None, -1)
    assert producer.produced == [("out", b"k", b"v", -1, 42)]
    assert producer.polls >= 3  # delivery reports served while waiting
    assert collector.sent == 1


def test_failed_deliveries_fail_the_flush_that_precedes_a_commit() -> None:
    producer = _FullThenFree(full_for=0)
    collector = RecordCollector(producer, lambda topic: 1)  # type: ignore[arg-type]
    collector.send("out", b"k", b"v", 1, None, -1)

    class _Message:
        def topic(self) -> str:
            return "out"

    error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed")
    collector.on_delivery(error, _Message())
    with pytest.raises(StreamsException, match="Topic authorization failed"):
        collector.flush(1)


def test_records_timed_out_fail_the_flush_naming_task_timeout_ms() -> None:
    """The producer's message.timeout.ms is task_timeout_ms: a record it gave up on is the
    task timing out, and the line says which setting to look at."""
    producer = _FullThenFree(full_for=0)
    collector = RecordCollector(producer, lambda topic: 1, task_timeout_ms=15_000)  # type: ignore[arg-type]
    collector.send("out", b"k", b"v", 1, None, -1)

    class _Message:
        def topic(self) -> str:
            return "out"

    for _ in range(3):
        collector.on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT), _Message())
    with pytest.raises(StreamsException) as failed:
        collector.flush(1)
    assert str(failed.value) == (
        "3 records not acknowledged by the broker within task_timeout_ms=15000; offsets not "
        "committed, so they are processed again after a restart; check that Kafka is reachable"
    )
    collector.flush(1)  # reported once
