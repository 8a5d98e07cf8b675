"""Restore through the real runtime (stream worker, restore consumer) on the embedded broker.

In-memory stores restore their whole changelog on every start; persistent
stores that closed cleanly restore only the tail after their checkpoint.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest

from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.options import Materialized, Produced

APP = "restore-test"


def _topology(persistent: bool) -> Any:
    materialized = Materialized.as_("counts")
    if persistent:
        materialized = materialized.persistent_store()
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count(materialized)
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    return builder.build()


def _config(state_dir: Path) -> StreamsConfig:
    return StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
    )


def _produce(broker: EmbeddedBroker, records: list[tuple[str, str]]) -> None:
    producer = broker.producer({})
    for key, value in records:
        producer.produce("in", value.encode(), key.encode())
    producer.flush(1)


def _run_until_committed(
    broker: EmbeddedBroker, state_dir: Path, persistent: bool, total: int
) -> dict[str, int]:
    streams = KafkaStreams(_topology(persistent), _config(state_dir), broker=broker)
    streams.start()
    deadline = time.monotonic() + 10
    while sum(broker.committed_offsets(APP).values()) < total and time.monotonic() < deadline:
        time.sleep(0.01)
    assert streams.close(10)
    assert streams.error is None
    return streams.metrics()


def _latest_counts(broker: EmbeddedBroker) -> dict[str, int]:
    latest: dict[str, int] = {}
    for _partition, _offset, key, value, _ts, _headers in sorted(
        broker.read_all("out"), key=lambda r: (r[0], r[1])
    ):
        assert key is not None and value is not None
        latest[key.decode()] = int.from_bytes(value, "big", signed=True)
    return latest


def _records(start: int, count: int) -> list[tuple[str, str]]:
    return [(f"k{i % 7}", f"v{i}") for i in range(start, start + count)]


def _truth(records: list[tuple[str, str]]) -> dict[str, int]:
    return dict(collections.Counter(key for key, _ in records))


@pytest.mark.parametrize("persistent", [False, True], ids=["in-memory", "persistent"])
def test_counts_continue_from_the_restored_state(tmp_path: Path, persistent: bool) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 2), TopicSpec("out", 2)])
    first = _records(0, 100)
    _produce(broker, first)
    _run_until_committed(broker, tmp_path, persistent, 100)
    second = _records(100, 60)
    _produce(broker, second)
    metrics = _run_until_committed(broker, tmp_path, persistent, 160)
    # Counts that forgot the first run would restart from zero.
    assert _latest_counts(broker) == _truth(first + second)
    changelog_records = sum(broker.end_offsets(f"{APP}-counts-changelog"))
    if persistent:
        # A clean close left a checkpoint: the local copy is intact, nothing to read.
        assert metrics["restored_records"] == 0
    else:
        assert 0 < metrics["restored_records"] <= changelog_records


def test_a_persistent_store_without_checkpoint_is_restored_in_full(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 2), TopicSpec("out", 2)])
    first = _records(0, 100)
    _produce(broker, first)
    _run_until_committed(broker, tmp_path, True, 100)
    checkpoints = list(tmp_path.rglob(".checkpoint"))
    assert checkpoints, "a clean close writes a checkpoint per task"
    for checkpoint in checkpoints:
        checkpoint.unlink()  # as after a crash: nothing vouches for the local copy
    second = _records(100, 60)
    _produce(broker, second)
    metrics = _run_until_committed(broker, tmp_path, True, 160)
    assert metrics["restored_records"] > 0
    assert _latest_counts(broker) == _truth(first + second)


def test_a_changelog_whose_leader_is_not_known_yet_is_waited_for() -> None:
    """Just after the internal topics are created, the broker may answer "not leader
    for partition": restore waits for the leader instead of stopping the worker."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    from topicflow.state.restore import watermarks

    class Consumer:
        calls = 0

        def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
            Consumer.calls += 1
            if Consumer.calls < 3:
                raise KafkaException(KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION))
            return 0, 42

    assert watermarks(Consumer(), TopicPartition("c", 0), 5) == (0, 42)  # type: ignore[arg-type]
    assert Consumer.calls == 3

    class Broken:
        def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
            raise KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))

    with pytest.raises(KafkaException):
        watermarks(Broken(), TopicPartition("c", 0), 5)  # type: ignore[arg-type]


# -- timestamped stores: state written before them -----------------------------------------------


def _out_records(broker: EmbeddedBroker) -> list[tuple[str, int, int]]:
    return [
        (key.decode(), int.from_bytes(value, "big", signed=True), ts)
        for _p, _o, key, value, ts, _h in sorted(broker.read_all("out"), key=lambda r: r[:2])
        if key is not None and value is not None
    ]


@pytest.mark.parametrize("persistent", [False, True], ids=["in-memory", "persistent"])
def test_a_changelog_of_plain_values_restores_with_its_record_timestamps(
    tmp_path: Path, persistent: bool
) -> None:
    """Changelog records keep the plain value, and the value's timestamp as the record's
    (as Kafka Streams' timestamped stores log them), which is also how topicflow wrote
    changelogs before its stores were timestamped: such a changelog restores each value
    with its timestamp, and the next result is stamped max(record, restored value)."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 1), TopicSpec("out", 1)])
    broker.create_topics([TopicSpec(f"{APP}-counts-changelog", 1)])
    producer = broker.producer({})
    # Written as a count store's changelog always was: key, Long value, the update's time.
    producer.produce(
        f"{APP}-counts-changelog", (5).to_bytes(8, "big"), b"k0", partition=0, timestamp=9_000
    )
    producer.flush(1)
    producer.produce("in", b"v", b"k0", partition=0, timestamp=1_000)
    producer.produce("in", b"v", b"k1", partition=0, timestamp=2_000)
    producer.flush(1)
    metrics = _run_until_committed(broker, tmp_path, persistent, 2)
    assert metrics["restored_records"] == 1
    # k0 continues from the restored 5, at the restored value's later timestamp.
    assert _out_records(broker) == [("k0", 6, 9_000), ("k1", 1, 2_000)]


def test_a_persistent_store_from_before_timestamped_stores_is_restored_in_full(
    tmp_path: Path,
) -> None:
    """A RocksDB folder written before stores were timestamped holds values without their
    timestamps; even with a checkpoint it is wiped and restored from the changelog."""
    from rocksdict import AccessType, Options, Rdict

    from topicflow.state.stores import TIMESTAMPED_MARKER

    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", 2), TopicSpec("out", 2)])
    first = _records(0, 100)
    _produce(broker, first)
    _run_until_committed(broker, tmp_path, True, 100)
    folders = [marker.parent for marker in tmp_path.rglob(TIMESTAMPED_MARKER)]
    assert folders and list(tmp_path.rglob(".checkpoint"))
    for folder in folders:  # rewrite it as the old format: plain values, no marker
        (folder / TIMESTAMPED_MARKER).unlink()
        db = Rdict(str(folder), Options(raw_mode=True), access_type=AccessType.read_write())
        for key, value in list(db.items()):
            db[key] = value[8:]
        db.close()
    second = _records(100, 60)
    _produce(broker, second)
    metrics = _run_until_committed(broker, tmp_path, True, 160)
    assert metrics["restored_records"] > 0
    assert _latest_counts(broker) == _truth(first + second)
    assert all((folder / TIMESTAMPED_MARKER).exists() for folder in folders)


# -- changelog read errors ------------------------------------------------------------------


class _ErrorMessage:
    def __init__(self, code: int) -> None:
        from confluent_kafka import KafkaError

        self._error = KafkaError(code)

    def error(self) -> Any:
        return self._error

    def topic(self) -> str:
        return "restore-errors-counts-changelog"

    def partition(self) -> int:
        return 0


class _ChangelogConsumer:
    """A changelog of 10 records that answers with `errors` before (and instead of) them."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors

    def get_watermark_offsets(self, tp: Any, timeout: float = 0) -> tuple[int, int]:
        return 0, 10

    def assign(self, partitions: Any) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        if self.errors:
            return [_ErrorMessage(self.errors.pop(0))]
        return []

    def position(self, partitions: Any) -> list[Any]:
        from confluent_kafka import TopicPartition

        return [TopicPartition(tp.topic, tp.partition, 0) for tp in partitions]


def _counts_state(tmp_path: Path) -> Any:
    from topicflow.state.manager import StateManager
    from topicflow.state.stores import StoreSpec
    from topicflow.topology.nodes import RecordContext

    spec = StoreSpec("counts", "key_value", Serdes.String(), Serdes.Long(), caching=False)
    config = StreamsConfig(application_id="restore-errors", state_dir=str(tmp_path))

    class _Sender:
        def send(self, *args: Any) -> None:
            pass

        def partition_count(self, topic: str) -> int:
            return 1

    return StateManager("0_0", 0, [spec], config, _Sender(), RecordContext())


def test_a_changelog_the_application_may_not_read_fails_restore_at_once(tmp_path: Path) -> None:
    """Not a 60 s "stalled": the first authorization error ends restore with one line."""
    from confluent_kafka import KafkaError

    from topicflow.errors import StreamsException

    state = _counts_state(tmp_path)
    consumer = _ChangelogConsumer([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    started = time.monotonic()
    with pytest.raises(StreamsException) as failed:
        state.restore(consumer)
    assert time.monotonic() - started < 5
    message = str(failed.value)
    assert message.startswith(
        "task 0_0: cannot read changelog restore-errors-counts-changelog[0]: Broker: "
    )
    assert "authoriz" in message.lower() and "\n" not in message


def test_a_transient_changelog_error_is_named_if_restore_stalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka import KafkaError

    from topicflow.errors import StreamsException
    from topicflow.state import manager

    clock = iter(range(0, 10_000, 7))
    monkeypatch.setattr(manager.time, "monotonic", lambda: next(clock))
    state = _counts_state(tmp_path)
    consumer = _ChangelogConsumer([KafkaError._TRANSPORT])
    with pytest.raises(StreamsException, match=r"stalled for 60 s \(last error: .*\)"):
        state.restore(consumer)
