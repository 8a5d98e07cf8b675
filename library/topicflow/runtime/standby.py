"""Standby tasks (num_standby_replicas): warm copies of other members' state.

A standby task holds the stores of a stateful task that another member runs,
and keeps them up to date by reading their changelogs, as Kafka Streams'
standby tasks do. When the active member dies, the task usually moves to a
member that has it on standby: that member restores only the changelog records
written since its last read, not the whole changelog.

Kafka Streams places standbys in its own assignor. librdkafka's assignors
cannot, so each stream worker places them itself from the group's description
(members, their hosts and their partitions), with the same rule everywhere:
for each stateful task, the `num_standby_replicas` members other than its
owner that rank highest for it, members on other hosts (other dynos) first.
The ranking is a rendezvous hash of task and member: every member computes the
same placement, and a member joining or leaving moves few standbys.

Standbys read in the stream worker's loop, a bounded batch per iteration, so
they never hold up processing. With idempotent state they also keep the flush
stamps of recent changelog records (newer than the active task's last commit),
which a take-over needs to replay without double counting.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, Admin, Broker, Consumer, GroupMember
from topicflow.config import StreamsConfig
from topicflow.runtime.source_route import TaskId
from topicflow.state.manager import StateManager, WarmState
from topicflow.state.restore import note_flush_stamps
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import RecordContext
from topicflow.topology.topology import SubTopology

log = logging.getLogger(__name__)


# How long after a rebalance to place standbys (the group's assignment
# settles), and how often to look again.
STANDBY_SETTLE_S = 1.0
STANDBY_REFRESH_S = 5.0


def stateful_subtopologies(subtopologies: Iterable[SubTopology]) -> set[int]:
    """The sub-topologies with at least one store."""
    return {sub.id for sub in subtopologies if sub.store_names()}


def standby_placement(
    members: list[GroupMember],
    subtopology_of: dict[str, SubTopology],
    stateful: set[int],
    replicas: int,
) -> dict[str, set[TaskId]]:
    """Member id -> the tasks it keeps on standby."""
    owners: dict[TaskId, GroupMember] = {}
    for member in members:
        for topic, partition in member.partitions:
            sub = subtopology_of.get(topic)
            if sub is not None and sub.id in stateful:
                owners[TaskId(sub.id, partition)] = member
    placement: dict[str, set[TaskId]] = {m.member_id: set() for m in members}
    for task, owner in owners.items():
        others = [m for m in members if m.member_id != owner.member_id]
        # Another host first (a standby on the owner's machine dies with it), then
        # the highest rank.
        others.sort(key=lambda m: (m.host == owner.host, -_rank(task, m.member_id)))
        for member in others[:replicas]:
            placement[member.member_id].add(task)
    return placement


def _rank(task: TaskId, member_id: str) -> int:
    digest = hashlib.blake2b(f"{task}|{member_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class _NoSender:
    """A standby never writes: its stores are only restored into."""

    def send(self, *args: Any) -> None:
        raise AssertionError("a standby task wrote to a store")

    def partition_count(self, topic: str) -> int:
        raise AssertionError("a standby task produced a record")


class _Standby:
    """One standby task: its stores, and how far it has read each changelog."""

    def __init__(
        self, task_id: TaskId, state: StateManager, stamping: bool, directory: Path
    ) -> None:
        self.task_id = task_id
        self.state = state
        self.directory = directory
        self.positions: dict[str, int] = {}
        # Idempotent state: changelog key -> flush stamp of its latest record, for
        # records stamped beyond `floor` (the active task's last known commit).
        self.stamps: dict[str, dict[bytes, int]] | None = {} if stamping else None
        self.floor = -1
        self.appliers = state.changelog_appliers()

    def apply(self, topic: str, messages: list[Any]) -> None:
        self.appliers[topic](messages)
        self.positions[topic] = messages[-1].offset() + 1
        if self.stamps is not None:
            note_flush_stamps(messages, self.stamps.setdefault(topic, {}), self.floor)

    def raise_floor(self, committed: int) -> None:
        """The active task committed `committed`: older stamps can no longer matter."""
        if self.stamps is None or committed <= self.floor:
            return
        self.floor = committed
        for stamps in self.stamps.values():
            for key in [k for k, g in stamps.items() if g <= committed]:
                del stamps[key]


class StandbyTasks:
    """A stream worker's standby tasks, fed by one consumer of their changelogs."""

    def __init__(
        self,
        config: StreamsConfig,
        broker: Broker,
        subtopologies: dict[int, SubTopology],
        store_specs: dict[str, StoreSpec],
        client_id: str,
        consumer_config: dict[str, Any],
    ) -> None:
        self._config = config
        self._broker = broker
        self._subtopologies = subtopologies
        self._store_specs = store_specs
        self._client_id = client_id
        # The worker's restore consumer settings, under this standby set's client id.
        self._consumer_config = consumer_config
        self._tasks: dict[TaskId, _Standby] = {}
        self._by_changelog: dict[tuple[str, int], tuple[_Standby, str]] = {}
        self._consumer: Consumer | None = None

    @property
    def task_ids(self) -> set[TaskId]:
        return set(self._tasks)

    def update(self, wanted: set[TaskId]) -> None:
        """Keep standbys of exactly these tasks: drop the others, start the new ones."""
        if wanted == set(self._tasks):
            return
        for task_id in set(self._tasks) - wanted:
            self._drop(self._tasks.pop(task_id))
        for task_id in sorted(wanted - set(self._tasks)):
            self._tasks[task_id] = self._new_standby(task_id)
        self._reassign()
        log.info(
            "%s: standby tasks %s",
            self._client_id,
            ", ".join(str(t) for t in sorted(self._tasks)) or "none",
        )

    def _new_standby(self, task_id: TaskId) -> _Standby:
        sub = self._subtopologies[task_id.subtopology]
        specs = [self._store_specs[name] for name in sub.store_names()]
        # Persistent stores in a folder of their own: the task's folder may belong
        # to another instance sharing this state directory.
        directory = (
            Path(self._config.state_dir)
            / self._config.application_id
            / "standby"
            / self._client_id
            / str(task_id)
        )
        state = StateManager(
            str(task_id),
            task_id.partition,
            specs,
            self._config,
            _NoSender(),
            RecordContext(),
            directory=directory,
        )
        return _Standby(task_id, state, self._config.stamps_replays, directory)

    def _reassign(self) -> None:
        self._by_changelog = {}
        partitions = []
        for standby in self._tasks.values():
            for topic in standby.appliers:
                self._by_changelog[(topic, standby.task_id.partition)] = (standby, topic)
                start = standby.positions.get(topic, OFFSET_BEGINNING)
                partitions.append(TopicPartition(topic, standby.task_id.partition, start))
        if self._consumer is None:
            if not partitions:
                return
            self._consumer = self._broker.consumer(self._consumer_config)
        self._consumer.assign(partitions)

    def poll(self, max_records: int) -> int:
        """Apply what the changelogs have; returns records applied (0 when idle)."""
        if self._consumer is None or not self._tasks:
            return 0
        messages = self._consumer.consume(max_records, 0)
        if not messages:
            return 0
        batches: dict[tuple[str, int], list[Any]] = {}
        for message in messages:
            if message.error() is None:
                batches.setdefault((message.topic(), message.partition()), []).append(message)
        for key, batch in batches.items():
            target = self._by_changelog.get(key)
            if target is not None:
                standby, topic = target
                standby.apply(topic, batch)
        return len(messages)

    def place(
        self,
        admin: Admin,
        me: str | None,
        subtopology_of: dict[str, SubTopology],
        stateful: set[int],
        active: set[TaskId],
        committed: Callable[[set[TaskId]], dict[TaskId, tuple[int, list[str]]]] | None,
    ) -> float:
        """Keep on standby the tasks the group's description gives this member (`me`);
        returns how long until placing them again.

        Every member computes the same placement (`standby_placement`); the
        description is read again after each rebalance and every few seconds,
        since another member's rebalance does not always reach this one.
        Idempotent state (`committed` given): a standby skips what its active
        task committed.
        """
        try:
            members = admin.group_members(self._config.application_id, 5.0)
        except Exception as error:  # placement waits; processing goes on
            log.warning("cannot describe the group for standby tasks: %s", error)
            return STANDBY_REFRESH_S
        if members is None or me is None:
            return STANDBY_SETTLE_S  # rebalancing: soon again
        placement = standby_placement(
            members, subtopology_of, stateful, self._config.num_standby_replicas
        )
        wanted = placement.get(me, set()) - active
        self.update(wanted)
        if committed is not None and wanted:
            self.raise_floors({task: offset for task, (offset, _) in committed(wanted).items()})
        return STANDBY_REFRESH_S

    def raise_floors(self, committed: dict[TaskId, int]) -> None:
        for task_id, offset in committed.items():
            standby = self._tasks.get(task_id)
            if standby is not None:
                standby.raise_floor(offset)

    def take(self, task_id: TaskId) -> WarmState | None:
        """Hand a standby's stores to the active task taking over; None if not on standby."""
        standby = self._tasks.pop(task_id, None)
        if standby is None:
            return None
        self._reassign()
        log.info(
            "%s: task %s takes over its standby's stores at %s",
            self._client_id,
            task_id,
            standby.positions,
        )
        return standby.state.hand_over(dict(standby.positions), standby.stamps or {})

    def _drop(self, standby: _Standby) -> None:
        standby.state.close()
        shutil.rmtree(standby.directory, ignore_errors=True)

    def close(self) -> None:
        for standby in self._tasks.values():
            self._drop(standby)
        self._tasks.clear()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
