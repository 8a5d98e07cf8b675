"""Restore does not block: a task restoring its stores lets the running tasks process.

As Kafka Streams' state updater: the stream worker reads one bounded batch of
changelog records per loop turn (state/restore.py), so a task being restored
from a long changelog does not hold up the others; the records of the
restoring task consumed meanwhile wait, and are processed, in order, once its
stores are complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.options import Materialized, Produced
from topicflow.errors import StreamsException
from topicflow.runtime.task_manager import TaskManager, TaskState
from topicflow.state import manager as manager_module
from topicflow.state import restore as restore_module
from topicflow.state.restore import ChangelogReader, TaskRestore

APP = "interleaved"
CHANGELOG = f"{APP}-counts-changelog"


def _topology() -> Any:
    builder = StreamsBuilder()
    # Sub-topology 0: stateful (counts per key, logged).
    (
        builder.stream("counted")
        .group_by_key()
        .count(Materialized.as_("counts"))
        .to_stream()
        .to("counts-out", Produced.with_(Serdes.String(), Serdes.Long()))
    )
    # Sub-topology 1: stateless, runs while sub-topology 0 restores.
    builder.stream("passed").map_values(str.upper).to("passed-out")
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


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert condition()


def test_a_running_task_processes_while_another_restores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long changelog read in small, slow batches: restore takes many loop
    # turns and about 2 s in all.
    monkeypatch.setattr(restore_module, "RESTORE_BATCH", 20)
    applier = manager_module.batch_applier

    def slow_applier(store: Any, config: StreamsConfig) -> Any:
        apply = applier(store, config)

        def slowly(batch: list[Any]) -> None:
            time.sleep(0.001)
            apply(batch)

        return slowly

    monkeypatch.setattr(manager_module, "batch_applier", slow_applier)
    broker = EmbeddedBroker()
    broker.create_topics(
        [
            TopicSpec("counted", 1),
            TopicSpec("counts-out", 1),
            TopicSpec("passed", 1),
            TopicSpec("passed-out", 1),
            TopicSpec(CHANGELOG, 1),  # not compacted: 40,000 records to read
        ]
    )
    producer = broker.producer({})
    # What an earlier run left in the changelog: 40,000 updates of 100 keys,
    # ending at count 400 each (the changelog's value is the count as a long).
    for i in range(40_000):
        key = f"k{i % 100}".encode()
        producer.produce(CHANGELOG, (i // 100 + 1).to_bytes(8, "big", signed=True), key)
    for i in range(10):
        producer.produce("passed", f"word{i}".encode(), f"p{i}".encode())
    # A record of the restoring task, consumed while it restores: it must wait
    # for the restored count, then count on top of it.
    producer.produce("counted", b"x", b"k7")
    producer.flush(1)

    streams = KafkaStreams(_topology(), _config(tmp_path), broker=broker)
    streams.start()
    try:
        _wait_for(lambda: len(broker.read_all("passed-out")) == 10, 20)
        (worker,) = streams._workers
        states = {str(t): worker._manager.state(t) for t in worker.tasks}
        # The stateless task ran to the end of its input while the stateful one
        # was still restoring (a blocking restore would have run it only after).
        assert states["0_0"] is TaskState.RESTORING, states
        assert states["1_0"] is TaskState.RUNNING
        assert broker.read_all("counts-out") == []
        _wait_for(lambda: len(broker.read_all("counts-out")) == 1, 60)
    finally:
        assert streams.close(10)
    assert streams.error is None
    ((_p, _o, key, value, _ts, _h),) = broker.read_all("counts-out")
    assert (key, int.from_bytes(value or b"", "big")) == (b"k7", 401)
    assert streams.metrics()["restored_records"] == 40_000


class _Consumer:
    """A restore consumer over in-memory changelog partitions, for ChangelogReader."""

    class Message:
        def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
            self._t, self._p, self._o, self._v = topic, partition, offset, value

        def topic(self) -> str:
            return self._t

        def partition(self) -> int:
            return self._p

        def offset(self) -> int:
            return self._o

        def value(self) -> bytes:
            return self._v

        def error(self) -> None:
            return None

    def __init__(self, logs: dict[tuple[str, int], int]) -> None:
        self.logs = logs  # (topic, partition) -> number of records, values b"<offset>"
        self.positions: dict[tuple[str, int], int] = {}
        self.assigns = 0

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigns += 1
        self.positions = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in partitions}

    def unassign(self) -> None:
        self.positions = {}

    def consume(self, num: int, timeout: float) -> list[Any]:
        out = []
        # Interleaved across partitions, a record of each in turn.
        while len(out) < num:
            progressed = False
            for (topic, partition), position in self.positions.items():
                if position < self.logs[(topic, partition)] and len(out) < num:
                    out.append(self.Message(topic, partition, position, b"%d" % position))
                    self.positions[(topic, partition)] = position + 1
                    progressed = True
            if not progressed:
                break
        return out

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.positions.get((tp.topic, tp.partition), -1))
            for tp in partitions
        ]


def _restore(
    task: str, partition: int, ends: dict[str, int], into: dict[str, list[tuple[int, bytes]]]
) -> TaskRestore:
    def applier(topic: str) -> Any:
        def apply(batch: list[Any]) -> None:
            into.setdefault(f"{task}:{topic}", []).extend((m.offset(), m.value()) for m in batch)

        return apply

    return TaskRestore(
        task,
        partition,
        {topic: applier(topic) for topic in ends},
        dict.fromkeys(ends, 0),
        ends,
        lambda restore: into.setdefault("finished", []).append((restore.applied, task.encode())),
    )


def test_the_reader_restores_tasks_side_by_side_each_record_to_its_own_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(restore_module, "RESTORE_BATCH", 7)
    consumer = _Consumer({("a", 0): 30, ("b", 0): 12, ("a", 1): 5})
    reader = ChangelogReader(consumer)  # type: ignore[arg-type]
    applied: dict[str, list[tuple[int, bytes]]] = {}
    reader.add(_restore("0_0", 0, {"a": 30, "b": 12}, applied))
    reader.add(_restore("0_1", 1, {"a": 5}, applied))
    turns = 0
    while reader:
        reader.read(0)
        turns += 1
    # Bounded batches: 47 records, at most 7 per read.
    assert turns >= 7
    assert applied["0_0:a"] == [(o, b"%d" % o) for o in range(30)]
    assert applied["0_0:b"] == [(o, b"%d" % o) for o in range(12)]
    assert applied["0_1:a"] == [(o, b"%d" % o) for o in range(5)]
    # The short restore finished first, each once, with its own count.
    assert applied["finished"] == [(5, b"0_1"), (42, b"0_0")]


def test_a_task_removed_mid_restore_is_no_longer_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "RESTORE_BATCH", 4)
    consumer = _Consumer({("a", 0): 40, ("a", 1): 8})
    reader = ChangelogReader(consumer)  # type: ignore[arg-type]
    applied: dict[str, list[tuple[int, bytes]]] = {}
    reader.add(_restore("0_0", 0, {"a": 40}, applied))
    reader.read(0)
    reader.add(_restore("0_1", 1, {"a": 8}, applied))
    reader.remove("0_0")
    while reader:
        reader.read(0)
    assert len(applied["0_0:a"]) < 40
    assert applied["0_1:a"] == [(o, b"%d" % o) for o in range(8)]
    assert applied["finished"] == [(8, b"0_1")]
    # The reader resumed the other task where it stood, not from the start.
    assert [o for o, _ in applied["0_0:a"]] == list(range(len(applied["0_0:a"])))


def test_a_stalled_restore_names_its_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "STALL_S", 0.0)
    consumer = _Consumer({("a", 3): 0})  # the end says 5 records, none can be read
    reader = ChangelogReader(consumer)  # type: ignore[arg-type]
    reader.add(_restore("0_3", 3, {"a": 5}, {}))
    reader.read(0)  # starts the idle clock
    time.sleep(0.01)
    with pytest.raises(StreamsException, match=r"task 0_3: restoring \['a\[3\]'\] stalled"):
        reader.read(0)


def _slow_restore(monkeypatch: pytest.MonkeyPatch, pause_s: float) -> None:
    monkeypatch.setattr(restore_module, "RESTORE_BATCH", 20)
    applier = manager_module.batch_applier

    def slow_applier(store: Any, config: StreamsConfig) -> Any:
        apply = applier(store, config)

        def slowly(batch: list[Any]) -> None:
            time.sleep(pause_s)
            apply(batch)

        return slowly

    monkeypatch.setattr(manager_module, "batch_applier", slow_applier)


def _fill_changelog(broker: EmbeddedBroker, updates: int) -> None:
    producer = broker.producer({})
    for i in range(updates):
        key = f"k{i % 100}".encode()
        producer.produce(CHANGELOG, (i // 100 + 1).to_bytes(8, "big", signed=True), key)
    producer.flush(1)


def test_a_restoring_tasks_input_waits_in_the_broker_not_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_restore(monkeypatch, 0.001)
    held: list[int] = []
    restored = TaskManager.restored

    def counting(self: TaskManager, task_id: Any) -> list[Any]:
        records = restored(self, task_id)
        held.append(len(records))
        return records

    monkeypatch.setattr(TaskManager, "restored", counting)
    broker = EmbeddedBroker()
    broker.create_topics(
        [TopicSpec(t, 1) for t in ("counted", "counts-out", "passed", "passed-out", CHANGELOG)]
    )
    _fill_changelog(broker, 20_000)
    producer = broker.producer({})
    for i in range(5_000):
        producer.produce("counted", b"x", f"k{i % 100}".encode())
    producer.flush(1)
    config = _config(tmp_path).with_overrides(max_poll_records=100)
    streams = KafkaStreams(_topology(), config, broker=broker)
    streams.start()
    try:
        _wait_for(lambda: sum(broker.committed_offsets(APP).values()) == 5_000, 60)
    finally:
        assert streams.close(10)
    assert streams.error is None
    # Paused while restoring: at most a batch was consumed ahead, not the 5,000.
    assert held and max(held) <= 100, held
    latest: dict[bytes, int] = {}
    for _p, _o, key, value, _ts, _h in broker.read_all("counts-out"):
        assert key is not None and value is not None
        latest[key] = int.from_bytes(value, "big")
    assert latest == {f"k{i}".encode(): 200 + 50 for i in range(100)}


def test_a_restore_cut_short_resumes_from_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_restore(monkeypatch, 0.002)
    broker = EmbeddedBroker()
    broker.create_topics(
        [TopicSpec(t, 1) for t in ("counted", "counts-out", "passed", "passed-out", CHANGELOG)]
    )
    _fill_changelog(broker, 20_000)

    def topology() -> Any:
        builder = StreamsBuilder()
        (
            builder.stream("counted")
            .group_by_key()
            .count(Materialized.as_("counts").persistent_store())
            .to_stream()
            .to("counts-out", Produced.with_(Serdes.String(), Serdes.Long()))
        )
        builder.stream("passed").to("passed-out")
        return builder.build()

    first = KafkaStreams(topology(), _config(tmp_path), broker=broker)
    first.start()
    time.sleep(0.5)  # about 5,000 of the 20,000 records restored
    assert first.close(10)
    assert first.error is None
    (checkpoint,) = tmp_path.rglob(".checkpoint")
    offsets = json.loads(checkpoint.read_text())
    cut = offsets[CHANGELOG]
    assert 0 < cut < 20_000, offsets

    producer = broker.producer({})
    producer.produce("counted", b"x", b"k7")
    producer.flush(1)
    second = KafkaStreams(topology(), _config(tmp_path), broker=broker)
    second.start()
    try:
        _wait_for(lambda: len(broker.read_all("counts-out")) == 1, 60)
    finally:
        assert second.close(10)
    # The second run read only what the first had not.
    assert second.metrics()["restored_records"] == 20_000 - cut
    ((_p, _o, key, value, _ts, _h),) = broker.read_all("counts-out")
    assert (key, int.from_bytes(value or b"", "big")) == (b"k7", 201)
