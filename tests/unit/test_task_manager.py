"""TaskManager: every task in one state, the routes of the running ones only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.runtime.source_route import TaskId
from topicflow.runtime.task_manager import TaskManager, TaskState


@dataclass
class _State:
    checkpoint_discarded: int = 0

    def discard_checkpoint(self) -> None:
        self.checkpoint_discarded += 1


@dataclass
class _Task:
    id: TaskId
    state: _State = field(default_factory=_State)
    closed: int = 0

    def route(self, topic: str, partition: int) -> tuple[TaskId, str, int]:
        return (self.id, topic, partition)

    def close(self) -> None:
        self.closed += 1


@dataclass
class _Sub:
    id: int


class _Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._t, self._p, self._o = topic, partition, offset

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p


def _manager() -> tuple[TaskManager, list[_Task]]:
    created: list[_Task] = []

    def create(task_id: TaskId, sub: Any) -> Any:
        task = _Task(task_id)
        created.append(task)
        return task

    subs: dict[str, Any] = {"a": _Sub(0), "b": _Sub(0), "c": _Sub(1)}
    return TaskManager("w", subs, create), created


def tps(*pairs: tuple[str, int]) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t, p in pairs]


def test_created_tasks_restore_and_run_only_once_restored() -> None:
    manager, _ = _manager()
    new = manager.assign(tps(("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1)))
    # One task per sub-topology and partition: a and b are co-partitioned.
    assert [t.id for t in new] == [TaskId(0, 0), TaskId(1, 0), TaskId(0, 1)]
    assert all(manager.state(t.id) is TaskState.RESTORING for t in new)
    assert manager.routes == {} and manager.running == []
    assert manager.restoring and manager.is_held("b", 1)
    # Records of a restoring task are held back, the others pass, in order.
    batch = [_Message("a", 0, 5), _Message("c", 0, 1), _Message("a", 0, 6)]
    assert manager.hold_back(batch) == []
    held = manager.restored(TaskId(0, 0))
    assert [(m.topic(), m._o) for m in held] == [("a", 5), ("a", 6)]
    assert manager.state(TaskId(0, 0)) is TaskState.RUNNING
    assert manager.routes == {"a": {0: (TaskId(0, 0), "a", 0)}, "b": {0: (TaskId(0, 0), "b", 0)}}
    assert [t.id for t in manager.running] == [TaskId(0, 0)]
    assert not manager.is_held("a", 0)
    # Another's records are still held; restoring it twice hands them out once.
    assert manager.hold_back([_Message("c", 0, 2), _Message("a", 0, 7)])[0]._o == 7
    assert [m._o for m in manager.restored(TaskId(1, 0))] == [1, 2]
    assert manager.restored(TaskId(1, 0)) == []


def test_revoked_running_tasks_are_suspended_and_come_back_intact() -> None:
    manager, created = _manager()
    manager.assign(tps(("a", 0), ("b", 0), ("a", 1), ("b", 1)))
    for task in created:
        manager.restored(task.id)
    dropped = manager.drop(tps(("a", 0), ("b", 0), ("a", 1)))
    # Task 0_1 still reads b[1]: only 0_0 lost all its partitions.
    assert [t.id for t in dropped] == [TaskId(0, 0)]
    assert manager.routes == {"a": {}, "b": {1: (TaskId(0, 1), "b", 1)}}
    manager.suspend(dropped)
    assert manager.state(TaskId(0, 0)) is None and TaskId(0, 0) not in manager.active
    assert [t.id for t in manager.running] == [TaskId(0, 1)]
    # The same rebalance gives 0_0 back: no new task, no restore, checkpoint gone.
    assert manager.assign(tps(("a", 0), ("b", 0))) == []
    assert manager.state(TaskId(0, 0)) is TaskState.RUNNING
    assert created[0].state.checkpoint_discarded == 1 and created[0].closed == 0
    assert manager.routes["a"] == {0: (TaskId(0, 0), "a", 0)}


def test_suspended_tasks_not_given_back_are_closed_and_restoring_ones_are_not_kept() -> None:
    manager, created = _manager()
    manager.assign(tps(("a", 0), ("c", 0)))
    manager.restored(TaskId(0, 0))
    dropped = manager.drop(tps(("a", 0), ("c", 0)))
    manager.suspend(dropped)
    # The restoring one (1_0) was closed at once; the running one waits.
    assert [t.closed for t in created] == [0, 1]
    assert manager.active == {}
    manager.assign(tps(("a", 1)))
    assert [t.closed for t in created] == [1, 1, 0]
    assert list(manager.active) == [TaskId(0, 1)]


def test_close_all_closes_each_task_once() -> None:
    manager, created = _manager()
    manager.assign(tps(("a", 0), ("c", 0)))
    manager.restored(TaskId(0, 0))
    manager.suspend(manager.drop(tps(("a", 0))))
    manager.close_all()
    assert [t.closed for t in created] == [1, 1]
    assert manager.active == {} and manager.routes == {"a": {}} and not manager.restoring
