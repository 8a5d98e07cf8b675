"""Standby replicas keep a stream-stream join's window stores warm.

Two instances on the embedded broker run a windowed join; each keeps a standby
of the other's task. Records of one side fill the join windows; the first
instance leaves, and the second takes its task over, restoring almost nothing:
its standby had read the windows' changelog. Records of the other side then
join every record the windows hold, the taken-over task's included.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from topicflow import JoinWindows, KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker

APP = "standby-join-test"
PARTITIONS = 2
RECORDS = 600
KEYS = 10
T0 = 1_000_000


def _streams(broker: EmbeddedBroker, state_dir: Path, standbys: int) -> KafkaStreams:
    builder = StreamsBuilder()
    minute = timedelta(minutes=1)
    windows = JoinWindows.of_time_difference_and_grace(minute, minute)
    builder.stream("in").join(builder.stream("in2"), lambda a, b: f"{a}+{b}", windows).to("out")
    config = StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
        num_standby_replicas=standbys,
    )
    return KafkaStreams(builder.build(), config, broker=broker)


def _wait(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _take_over(tmp_path: Path, standbys: int) -> dict[str, Any]:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, PARTITIONS) for t in ("in", "in2", "out")])
    first = _streams(broker, tmp_path / "first", standbys)
    second = _streams(broker, tmp_path / "second", standbys)
    first.start()
    second.start()

    def owned(streams: KafkaStreams) -> set[str]:
        return {task for tasks in streams.tasks().values() for task in tasks}

    _wait(lambda: len(owned(first)) == 1 and len(owned(second)) == 1, "a task each")
    producer = broker.producer({})
    for i in range(RECORDS):
        key = f"k{i % KEYS}"
        producer.produce("in", f"a{i}".encode(), key.encode(), timestamp=T0 + i)
    producer.flush(1)
    _wait(lambda: sum(o for (t, _p), o in broker.committed_offsets(APP).items() if t == "in")
          == RECORDS, "the first side committed")  # fmt: skip
    changelogs = [t for t in broker.topics() if t.endswith("-changelog")]
    changelog = sum(sum(broker.end_offsets(t)) for t in changelogs)
    assert changelog >= RECORDS
    if standbys:
        _wait(
            lambda: (
                first.metrics()["standby_records"] + second.metrics()["standby_records"]
                >= changelog
            ),
            "the standbys to catch up",
        )
    assert first.close(10)
    _wait(lambda: len(owned(second)) == PARTITIONS, "the take-over")
    for k in range(KEYS):
        producer.produce("in2", f"b{k}".encode(), f"k{k}".encode(), timestamp=T0 + RECORDS)
    producer.flush(1)
    _wait(lambda: len(broker.read_all("out")) >= RECORDS, "every record joined")
    assert second.close(10)
    assert first.error is None and second.error is None
    joined = sorted(value.decode() for *_pos, _key, value, _ts, _h in broker.read_all("out"))
    truth = sorted(f"a{i}+b{i % KEYS}" for i in range(RECORDS))
    return {"joined": joined, "truth": truth, "changelog": changelog, **second.metrics()}


def test_a_standby_keeps_a_join_window_store_for_the_take_over(tmp_path: Path) -> None:
    result = _take_over(tmp_path, standbys=1)
    assert result["joined"] == result["truth"]
    # The taken-over task's windows are about half the changelog; the standby had them.
    assert result["restored_records"] < result["changelog"] // 10


def test_without_a_standby_the_windows_are_restored_from_the_changelog(tmp_path: Path) -> None:
    """The contrast: the same take-over restores the task's windows from the changelog."""
    result = _take_over(tmp_path, standbys=0)
    assert result["joined"] == result["truth"]
    assert result["restored_records"] >= result["changelog"] // 2 - 10
    assert result["standby_records"] == 0
