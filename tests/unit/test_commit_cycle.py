"""The at-least-once commit cycle: offsets are committed only after the output is acknowledged."""

from __future__ import annotations

import time
from typing import Any

import pytest

from topicflow import KafkaStreams, Serdes, State, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.runtime import commit


class _UnacknowledgedProducer:
    """Takes records but never gets them acknowledged: a broker that stopped answering."""

    def __init__(self) -> None:
        self.held: list[Any] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, *args: Any) -> None:
        self.held.append((topic, key, value))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        time.sleep(min(timeout, 0.01))
        return len(self.held)

    def __len__(self) -> int:
        return len(self.held)


class _BrokerWithStuckProducer:
    name = "embedded"

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker
        self.producer_instance = _UnacknowledgedProducer()

    def consumer(self, config: dict[str, Any]) -> Any:
        return self._broker.consumer(config)

    def producer(self, config: dict[str, Any]) -> Any:
        return self.producer_instance

    def admin(self) -> Any:
        return self._broker.admin()

    def check_reachable(self, timeout: float) -> None:
        return None


def _topology() -> Any:
    builder = StreamsBuilder()
    builder.stream("in").map_values(str.upper).to("out")
    return builder.build()


def _config(app: str) -> StreamsConfig:
    return StreamsConfig(
        application_id=app,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
    )


def _fill(broker: EmbeddedBroker, count: int) -> None:
    broker.create_topics([TopicSpec("in", 2), TopicSpec("out", 2)])
    producer = broker.producer({})
    for i in range(count):
        producer.produce("in", f"record {i}".encode(), f"k{i}".encode())
    producer.flush(1)


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_offsets_are_committed_after_the_output_is_acknowledged() -> None:
    broker = EmbeddedBroker()
    _fill(broker, 100)
    streams = KafkaStreams(_topology(), _config("acked"), broker=broker)
    streams.start()
    try:
        _wait_for(lambda: sum(broker.committed_offsets("acked").values()) == 100, 10)
    finally:
        assert streams.close(10)
    outputs = sorted(r[3] for r in broker.read_all("out"))
    assert outputs == sorted(f"RECORD {i}".encode() for i in range(100))


def test_nothing_is_committed_while_the_output_is_unacknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(commit, "FLUSH_TIMEOUT_S", 0.2)
    broker = EmbeddedBroker()
    _fill(broker, 100)
    stuck = _BrokerWithStuckProducer(broker)
    config = _config("stuck").with_overrides(task_timeout_ms=2500)
    streams = KafkaStreams(_topology(), config, broker=stuck)  # type: ignore[arg-type]
    started = time.monotonic()
    streams.start()
    # An outage shorter than task_timeout_ms is waited out, input paused...
    time.sleep(1.5)
    assert streams.state is not State.ERROR
    assert len(stuck.producer_instance.held) == 100  # processed...
    assert broker.committed_offsets("stuck") == {}  # ...but not committed
    # ...a longer one fails the worker, with one line naming the setting.
    _wait_for(lambda: streams.state is State.ERROR, 15)
    assert time.monotonic() - started >= 2.5
    assert broker.committed_offsets("stuck") == {}
    message = str(streams.error)
    assert "not acknowledged by the broker" in message
    assert "task_timeout_ms=2500" in message
    assert "\n" not in message
    streams.close(10)

    # A new instance of the application redoes the uncommitted work: nothing is lost.
    again = KafkaStreams(_topology(), _config("stuck"), broker=broker)
    again.start()
    try:
        _wait_for(lambda: sum(broker.committed_offsets("stuck").values()) == 100, 10)
    finally:
        assert again.close(10)
    assert len(broker.read_all("out")) == 100
