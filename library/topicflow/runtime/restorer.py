"""The stream worker's side of restore: a restore consumer, a changelog reader, and
the tasks they bring up to date, a bounded batch per turn of the loop.

As Kafka Streams' state updater: restoring tasks do not hold up the running
ones. The worker calls `start()` with the tasks an assignment created, then
`read()` once per loop turn; each call applies at most one batch of changelog
records (state/restore.py) and returns the tasks whose stores are complete.

Idempotent state: a task resumes at its committed input offset, with the
table of origins committed beside it; restore starts from there, so that
replayed records meet the stamps of what the stores already hold.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import TopicPartition

from topicflow.brokers.base import Broker, Consumer
from topicflow.config import StreamsConfig
from topicflow.runtime.processing import WorkerMetrics
from topicflow.runtime.replay import OriginFilter
from topicflow.runtime.source_route import TaskId
from topicflow.runtime.task import StreamTask
from topicflow.runtime.worker_clients import restore_consumer_config
from topicflow.state.restore import ChangelogReader, TaskRestore
from topicflow.topology.topology import SubTopology

# Committed input offset (-1: none) and commit metadata, per task.
CommittedOffsets = Callable[[set[TaskId]], dict[TaskId, tuple[int, list[str]]]]


def committed_offsets(
    consumer: Consumer, subtopology_of: dict[str, SubTopology], task_ids: set[TaskId]
) -> dict[TaskId, tuple[int, list[str]]]:
    """Per task: the group's committed offset of its input (-1: none) and the
    metadata committed with it (idempotent state: its table of origins)."""
    partitions = [
        TopicPartition(topic, task_id.partition)
        for topic, sub in subtopology_of.items()
        for task_id in task_ids
        if task_id.subtopology == sub.id
    ]
    if not partitions:
        return {}
    committed: dict[TaskId, tuple[int, list[str]]] = {}
    for tp in consumer.committed(partitions, 30):
        task_id = TaskId(subtopology_of[tp.topic].id, tp.partition)
        offset, metadata = committed.get(task_id, (-1, []))
        if tp.metadata:
            metadata.append(tp.metadata)
        committed[task_id] = (max(offset, tp.offset), metadata)
    return committed


class Restorer:
    def __init__(
        self,
        config: StreamsConfig,
        broker: Broker,
        client_id: str,
        committed: CommittedOffsets,
        metrics: WorkerMetrics,
    ) -> None:
        self._config = config
        self._broker = broker
        self._client_id = client_id
        self._committed = committed
        self._metrics = metrics
        self._consumer: Consumer | None = None
        self._reader: ChangelogReader | None = None
        self._tasks: dict[str, StreamTask] = {}  # by str(TaskId), as restores name them

    def start(self, tasks: list[StreamTask]) -> list[StreamTask]:
        """Begin restoring `tasks`; returns those with nothing to restore (ready now)."""
        if self._reader is None:
            self._consumer = self._broker.consumer(
                restore_consumer_config(self._config, self._client_id)
            )
            self._reader = ChangelogReader(self._consumer)
        assert self._consumer is not None
        stamping = self._config.stamps_replays
        committed = self._committed({task.id for task in tasks}) if stamping else {}
        ready = []
        for task in tasks:
            replay_from, metadata = committed.get(task.id, (-1, []))
            if task.origins is not None:
                for text in metadata:
                    task.origins.positions.update(OriginFilter.decode(text).positions)
            if not task.state.needs_restore:
                ready.append(task)
                continue
            restore = task.state.begin_restore(self._consumer, replay_from if stamping else None)
            self._tasks[restore.task_id] = task
            self._reader.add(restore)
        return ready

    def read(self, timeout: float) -> list[StreamTask]:
        """Apply one batch of changelog records; the tasks now restored."""
        if self._reader is None or not self._tasks:
            return []
        finished: list[TaskRestore] = self._reader.read(timeout)
        done = []
        for restore in finished:
            self._metrics.restored_records += restore.applied
            done.append(self._tasks.pop(restore.task_id))
        return done

    def forget(self, task_id: TaskId) -> None:
        """A task about to close before its restore ended: its persistent stores keep
        what they restored (a checkpoint), so restoring it again reads only the rest."""
        task = self._tasks.pop(str(task_id), None)
        if task is None or self._reader is None:
            return
        restore = self._reader.remove(str(task_id))
        if restore is not None:
            task.state.checkpoint_restore(restore)

    def close(self) -> None:
        """Before the tasks close: checkpoint the restores under way."""
        for task in list(self._tasks.values()):
            self.forget(task.id)
        if self._consumer is not None:
            self._consumer.close()
        self._consumer = None
        self._reader = None
        self._tasks.clear()
