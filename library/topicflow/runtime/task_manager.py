"""TaskManager: the stream worker's tasks, each in one state, in one place.

Kafka Streams' TaskManager. A task is created by an assignment and lives
through these states:

    RESTORING  its stores are read back from their changelogs (state/restore.py);
               its input partitions are paused, and any record of them consumed
               meanwhile is held back, to be processed once restore ends
    RUNNING    its records are processed: its routes are in `routes`, the index
               the per-record path reads; one that reads several partitions
               queues them in its PartitionGroup (`groups`), which the worker
               drains in timestamp order (runtime/partition_group.py)
    SUSPENDED  revoked by a rebalance, kept (stores intact) in case the same
               rebalance gives it back
    closed     no longer here: its stores are closed

The worker asks for transitions (assign, restored, revoke, lost); what is
committed when, and which guarantee closes what, stays with the worker and
its commit policy.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.errors import StreamsException
from topicflow.runtime.partition_group import PartitionGroup
from topicflow.runtime.processing import Routes
from topicflow.runtime.source_route import SourceRoute, TaskId
from topicflow.runtime.task import StreamTask
from topicflow.topology.topology import SubTopology

log = logging.getLogger(__name__)


class TaskState(enum.Enum):
    RESTORING = "RESTORING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"


class TaskManager:
    def __init__(
        self,
        name: str,
        subtopology_of: dict[str, SubTopology],
        create_task: Callable[[TaskId, SubTopology], StreamTask],
        create_group: Callable[[list[SourceRoute]], PartitionGroup] | None = None,
    ) -> None:
        self._name = name
        self._subtopology_of = subtopology_of
        self._create_task = create_task
        self._create_group = create_group
        self._tasks: dict[TaskId, StreamTask] = {}
        self._states: dict[TaskId, TaskState] = {}
        # Each active (restoring or running) task's input partitions.
        self._partitions: dict[TaskId, list[tuple[str, int]]] = {}
        # Input partitions of restoring tasks -> their task, and what they
        # delivered before restore ended.
        self._held_by: dict[tuple[str, int], TaskId] = {}
        self._held: dict[TaskId, list[Any]] = {}
        # topic -> partition -> route, of running tasks only (the per-record index).
        self.routes: Routes = {}
        # The running tasks, rebuilt on each transition: the loop punctuates and
        # commits them every turn.
        self.running: list[StreamTask] = []
        # The partition groups of running tasks that read several partitions (a
        # join's, a merge's), by task, rebuilt on each transition with the tasks'
        # routes: a task revoked drops its queued records (runtime/partition_group.py).
        self._groups: dict[TaskId, PartitionGroup] = {}
        self.groups: list[PartitionGroup] = []

    # -- what there is -------------------------------------------------------------

    @property
    def active(self) -> dict[TaskId, StreamTask]:
        """Restoring and running tasks (not suspended ones)."""
        return {t: task for t, task in self._tasks.items() if self.state(t) is not None}

    def state(self, task_id: TaskId) -> TaskState | None:
        state = self._states.get(task_id)
        return None if state is TaskState.SUSPENDED else state

    @property
    def restoring(self) -> bool:
        return bool(self._held)

    def is_held(self, topic: str, partition: int) -> bool:
        """Whether the partition belongs to a restoring task (its input waits)."""
        return (topic, partition) in self._held_by

    def is_full(self, topic: str, partition: int) -> bool:
        """Whether the partition is paused because its task's queue of it is full."""
        return any(group.is_paused(topic, partition) for group in self.groups)

    def partitions_of(self, task_id: TaskId) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self._partitions.get(task_id, [])]

    # -- rebalance -----------------------------------------------------------------

    def assign(self, partitions: list[Any]) -> list[StreamTask]:
        """Take on `partitions`: a suspended task that comes back runs again, stores
        intact; the others are created, to restore. Returns the created ones."""
        created: list[StreamTask] = []
        for tp in partitions:
            sub = self._subtopology_of.get(tp.topic)
            if sub is None:
                continue
            task_id = TaskId(sub.id, tp.partition)
            state = self._states.get(task_id)
            if state is TaskState.SUSPENDED:
                # Ours before the rebalance. It runs again, so its checkpoint must
                # go (a crash must not trust it).
                self._tasks[task_id].state.discard_checkpoint()
                self._states[task_id] = TaskState.RUNNING
            elif state is None:
                task = self._create_task(task_id, sub)
                self._tasks[task_id] = task
                self._states[task_id] = TaskState.RESTORING
                self._held[task_id] = []
                created.append(task)
            key = (tp.topic, tp.partition)
            self._partitions.setdefault(task_id, []).append(key)
            if self._states[task_id] is TaskState.RUNNING:
                self._add_route(task_id, key)
            else:
                self._held_by[key] = task_id
        # Suspended tasks that did not come back belong to another member now.
        self.close([t for t, s in self._states.items() if s is TaskState.SUSPENDED])
        self._changed()
        return created

    def restored(self, task_id: TaskId) -> list[Any]:
        """The task's stores are restored: it runs. Returns the records of its
        partitions consumed while it restored, to be processed first."""
        if self._states.get(task_id) is not TaskState.RESTORING:
            return []
        self._states[task_id] = TaskState.RUNNING
        for key in self._partitions.get(task_id, []):
            self._held_by.pop(key, None)
            self._add_route(task_id, key)
        self._changed()
        return self._held.pop(task_id, [])

    def drop(self, partitions: list[Any]) -> list[StreamTask]:
        """Forget `partitions`; the tasks left with none are no longer active and
        are returned (the caller suspends or closes them)."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        dropped: list[StreamTask] = []
        for task_id in list(self._partitions):
            kept = [key for key in self._partitions[task_id] if key not in gone]
            for topic, partition in self._partitions[task_id]:
                if (topic, partition) in gone:
                    self.routes.get(topic, {}).pop(partition, None)
                    self._held_by.pop((topic, partition), None)
            if kept:
                self._partitions[task_id] = kept
            else:
                del self._partitions[task_id]
                dropped.append(self._tasks[task_id])
        self._changed()
        return dropped

    def suspend(self, tasks: list[StreamTask]) -> None:
        """Keep revoked tasks until the rebalance ends; one still restoring is closed
        (its restore would start over anyway)."""
        for task in tasks:
            if self._states.get(task.id) is TaskState.RUNNING:
                self._states[task.id] = TaskState.SUSPENDED
            else:
                self.close([task.id])
        self._changed()

    def close(self, task_ids: list[TaskId]) -> None:
        for task_id in task_ids:
            task = self._tasks.pop(task_id, None)
            self._states.pop(task_id, None)
            self._held.pop(task_id, None)
            for topic, partition in self._partitions.pop(task_id, []):
                self.routes.get(topic, {}).pop(partition, None)
                self._held_by.pop((topic, partition), None)
            if task is None:
                continue
            try:
                task.close()
            except StreamsException as error:
                log.warning("%s: %s", self._name, error)
        self._changed()

    def close_all(self) -> None:
        self.close(list(self._tasks))

    # -- the per-batch path -----------------------------------------------------------

    def hold_back(self, messages: list[Any]) -> list[Any]:
        """The messages of running tasks; those of restoring tasks wait for their
        restore to end. (Their partitions are paused, but a fetch under way may
        still deliver a few.)"""
        held_by = self._held_by
        kept = []
        for message in messages:
            task_id = held_by.get((message.topic(), message.partition()))
            if task_id is None:
                kept.append(message)
            else:
                self._held[task_id].append(message)
        return kept

    # -- internals ---------------------------------------------------------------------

    def _add_route(self, task_id: TaskId, key: tuple[str, int]) -> None:
        topic, partition = key
        self.routes.setdefault(topic, {})[partition] = self._tasks[task_id].route(topic, partition)

    def _changed(self) -> None:
        self.running = [
            task for t, task in self._tasks.items() if self._states.get(t) is TaskState.RUNNING
        ]
        if self._create_group is None:
            return
        groups: dict[TaskId, PartitionGroup] = {}
        for task in self.running:
            keys = self._partitions.get(task.id, [])
            if len(keys) < 2:
                continue
            found = [self.routes.get(topic, {}).get(partition) for topic, partition in keys]
            routes = [route for route in found if route is not None]
            if len(routes) < 2:
                continue
            group = self._groups.get(task.id)
            groups[task.id] = (
                group if group is not None and group.reads(routes) else self._create_group(routes)
            )
        self._groups = groups
        self.groups = list(groups.values())
