"""num_standby_replicas: placement, and a take-over that restores only the tail.

Two instances on the embedded broker count per key (a changelog record per
update, no cache). With a standby, the instance that takes over a task from
the one that leaves restores almost nothing: its standby had read the
changelog. Without one, it reads the task's whole changelog.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import pytest

from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import GroupMember, TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.dsl.options import Materialized, Produced
from topicflow.runtime.source_route import TaskId
from topicflow.runtime.standby import standby_placement
from topicflow.topology.topology import SubTopology

APP = "standby-test"
PARTITIONS = 2
RECORDS = 2_000


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


def _streams(broker: EmbeddedBroker, state_dir: Path, standbys: int, persistent: bool) -> Any:
    config = StreamsConfig(
        application_id=APP,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        state_dir=str(state_dir),
        statestore_cache_max_bytes=0,  # a changelog record per update: a long changelog
        num_standby_replicas=standbys,
    )
    return KafkaStreams(_topology(persistent), config, broker=broker)


def _wait(condition: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _latest_counts(broker: EmbeddedBroker) -> dict[str, int]:
    latest: dict[str, int] = {}
    for _partition, _offset, key, value, _ts, _headers in sorted(
        broker.read_all("out"), key=lambda r: (r[0], r[1])
    ):
        assert key is not None and value is not None
        latest[key.decode()] = int.from_bytes(value, "big", signed=True)
    return latest


def _leave_and_take_over(tmp_path: Path, standbys: int, persistent: bool) -> dict[str, Any]:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("in", PARTITIONS), TopicSpec("out", PARTITIONS)])
    first = _streams(broker, tmp_path / "first", standbys, persistent)
    second = _streams(broker, tmp_path / "second", standbys, persistent)
    first.start()
    second.start()

    def owned(streams: Any) -> set[str]:
        return {task for tasks in streams.tasks().values() for task in tasks}

    # Each owns one task before any input: the first alone would process it all
    # (and the second restore a whole changelog when it joined).
    _wait(lambda: len(owned(first)) == 1 and len(owned(second)) == 1, "a task each")
    producer = broker.producer({})
    keys = [f"k{i % 50}" for i in range(RECORDS)]
    for i, key in enumerate(keys):
        producer.produce("in", b"v", key.encode(), partition=i % PARTITIONS)
    producer.flush(1)
    committed = {("in", p): RECORDS // PARTITIONS for p in range(PARTITIONS)}
    _wait(lambda: broker.committed_offsets(APP) == committed, "all input committed")
    changelog = sum(broker.end_offsets(f"{APP}-counts-changelog"))
    if standbys:
        # Each instance keeps the other's task warm: together they read it all.
        _wait(
            lambda: (
                first.metrics()["standby_records"] + second.metrics()["standby_records"]
                >= changelog
            ),
            "the standbys to catch up",
        )
    assert first.close(10)  # the second instance takes over the first one's task
    _wait(lambda: len(owned(second)) == PARTITIONS, "the take-over")
    producer.produce("in", b"v", b"k0", partition=0)
    producer.produce("in", b"v", b"k1", partition=1)
    producer.flush(1)
    committed = {("in", p): RECORDS // PARTITIONS + 1 for p in range(PARTITIONS)}
    _wait(lambda: broker.committed_offsets(APP) == committed, "the last records")
    assert second.close(10)
    assert first.error is None and second.error is None
    truth = collections.Counter([*keys, "k0", "k1"])
    return {
        "counts": _latest_counts(broker),
        "truth": dict(truth),
        "changelog": changelog,
        **second.metrics(),
    }


@pytest.mark.parametrize("persistent", [False, True], ids=["in-memory", "rocksdb"])
def test_a_standby_takes_over_without_reading_the_changelog_again(
    tmp_path: Path, persistent: bool
) -> None:
    result = _leave_and_take_over(tmp_path, standbys=1, persistent=persistent)
    assert result["counts"] == result["truth"]
    # The taken-over task's changelog is about half of it; the standby had it all.
    assert result["restored_records"] < result["changelog"] // 10


def test_without_a_standby_the_whole_changelog_is_read(tmp_path: Path) -> None:
    """The contrast: the same take-over restores the task's whole changelog."""
    result = _leave_and_take_over(tmp_path, standbys=0, persistent=False)
    assert result["counts"] == result["truth"]
    assert result["restored_records"] >= result["changelog"] // 2 - 10
    assert result["standby_records"] == 0


def _sub(sub_id: int, topic: str) -> SubTopology:
    return SubTopology(sub_id, [], [topic], [])


def test_placement_puts_standbys_on_other_members_other_hosts_first() -> None:
    subs = {"a": _sub(0, "a")}
    members = [
        GroupMember("m1", "host-1", (("a", 0), ("a", 1))),
        GroupMember("m2", "host-1", (("a", 2),)),
        GroupMember("m3", "host-2", (("a", 3),)),
    ]
    placement = standby_placement(members, subs, {0}, replicas=1)
    # Tasks of host-1's members go to host-2; host-2's task goes to host-1.
    assert placement["m3"] == {TaskId(0, 0), TaskId(0, 1), TaskId(0, 2)}
    assert placement["m1"] | placement["m2"] == {TaskId(0, 3)}
    two = standby_placement(members, subs, {0}, replicas=2)
    for member in members:
        owned = {TaskId(0, p) for _t, p in member.partitions}
        assert not owned & two[member.member_id]  # never a standby of its own task
    assert sum(len(tasks) for tasks in two.values()) == 8
    # A stateless sub-topology has no standbys.
    assert all(not tasks for tasks in standby_placement(members, subs, set(), 1).values())


def test_a_take_over_keeps_the_standbys_recent_flush_stamps(tmp_path: Path) -> None:
    """Idempotent state: stamps a standby saw beyond the committed offset reach the
    new active task, or its replay would apply those records a second time."""
    from topicflow.state.manager import StateManager, WarmState
    from topicflow.state.stores import InMemoryKeyValueStore, StoreSpec
    from topicflow.topology.nodes import RecordContext

    spec = StoreSpec("counts", "key_value", Serdes.String(), Serdes.Long())
    changelog = spec.changelog_topic(APP)
    config = StreamsConfig(application_id=APP, state_dir=str(tmp_path), idempotent_state=True)
    warm_store = InMemoryKeyValueStore("counts")
    warm_store.put("k", 9)
    warm = WarmState({"counts": warm_store}, {changelog: 5}, {changelog: {b"k": 9, b"old": 3}})

    class Sender:
        def send(self, *args: Any) -> None: ...

        def partition_count(self, topic: str) -> int:
            return 1

    class Consumer:  # the standby had read the changelog to its end
        def get_watermark_offsets(self, tp: Any, timeout: float) -> tuple[int, int]:
            return 0, 5

    state = StateManager(
        "0_0",
        0,
        [spec],
        config,
        Sender(),
        RecordContext(),
        lambda: 0,
        warm,  # type: ignore[arg-type]
    )
    assert state.restore(Consumer(), replay_from=5) == 0  # type: ignore[arg-type]
    store = state.stores["counts"]
    assert store.get("k") == 9  # the standby's store itself, not an empty one
    assert store.replay_stamps == {"k": 9}  # "old" (3) is at or below the commit
