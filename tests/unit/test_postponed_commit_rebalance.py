"""A commit postponed by a down sink, then a rebalance: input must resume afterwards.

librdkafka keeps a partition paused when a rebalance hands it back to the same
consumer (and the embedded broker does the same). A worker that paused input
for a down sink and then forgot about it in the rebalance would never read
those partitions again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import RetriableError
from topicflow.processor.api import Processor, Record

APP = "postponed-test"
PARTITIONS = 4


class FlakySink(Processor[str, str, str, str]):
    """Writes nowhere; its flush fails while the (shared) switch says the system is down."""

    down = True

    def process(self, record: Record[str, str]) -> None:
        return None

    def flush(self) -> None:
        if FlakySink.down:
            raise RetriableError("the sink's database is down (test)")


def _streams(broker: EmbeddedBroker, state_dir: Path) -> KafkaStreams:
    builder = StreamsBuilder()
    builder.stream("in").process(FlakySink)
    config = StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
    )
    return KafkaStreams(builder.build(), config, broker=broker)


def _produce(broker: EmbeddedBroker, start: int, count: int) -> None:
    producer = broker.producer({})
    for i in range(start, start + count):
        producer.produce("in", b"v", f"k{i}".encode(), partition=i % PARTITIONS)
    producer.flush(1)


def _wait(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {condition.__doc__ or ''}")
        time.sleep(0.02)


def test_input_paused_for_a_down_sink_resumes_after_a_rebalance(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", PARTITIONS)])
    FlakySink.down = True
    first = _streams(broker, tmp_path / "a")
    first.start()
    _produce(broker, 0, 40)
    # The first member consumed, could not commit, and paused its input.
    _wait(lambda: first.metrics()["records_consumed"] == 40, "the first records")
    second = _streams(broker, tmp_path / "b")
    second.start()  # a rebalance while the commit is postponed
    try:
        _wait(lambda: second.metrics()["records_consumed"] > 0, "the second member's share")
        FlakySink.down = False
        _produce(broker, 40, 40)
        # Every partition moves on, the first member's (still paused?) ones included.
        _wait(
            lambda: broker.committed_offsets(APP) == {("in", p): 20 for p in range(PARTITIONS)},
            "every partition committed to its end",
        )
    finally:
        FlakySink.down = False
        assert first.close(10) and second.close(10)
    assert first.error is None and second.error is None
