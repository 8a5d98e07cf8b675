"""What a stream worker does when the group's assignment changes.

Kafka Streams' StreamsRebalanceListener with its TaskManager's
handleAssignment / handleRevocation / handleLostAll. The consumer calls these
inside `consume()`; they decide, and the TaskManager records, what becomes of
each task:

- assigned: a task revoked earlier in the same rebalance runs again with its
  stores intact; the others are created and restore (their partitions paused
  until then, once the assignment is in force);
- revoked: the running tasks commit first (then checkpoint their persistent
  stores); the tasks left without partitions are suspended, in case the
  rebalance gives them back, unless the guarantee says a task revoked without
  a commit must be closed (runtime/guarantees.py): then every task closes, and
  those of partitions kept (cooperative rebalancing) are rebuilt from their
  changelogs and committed offsets; a task still restoring is closed, its
  restore checkpointed so far;
- lost: the partitions are someone else's already: no commit, the tasks close.
"""

from __future__ import annotations

import logging
from typing import Any

from topicflow.brokers.base import OFFSET_BEGINNING, OFFSET_END
from topicflow.errors import StreamsException
from topicflow.runtime.commit import CommitCycle
from topicflow.runtime.restorer import Restorer
from topicflow.runtime.source_route import TaskId
from topicflow.runtime.task import StreamTask
from topicflow.runtime.task_manager import TaskManager

log = logging.getLogger(__name__)


class Rebalance:
    def __init__(
        self, name: str, manager: TaskManager, restorer: Restorer, auto_offset_reset: str
    ) -> None:
        self._name = name
        self._auto_offset_reset = auto_offset_reset
        self._manager = manager
        self._restorer = restorer
        self.commits: CommitCycle | None = None  # set once the worker's clients exist
        # Tasks created by an assignment whose restore has not begun (it begins
        # in the loop: it reads committed offsets and watermarks from the broker).
        self.to_restore: list[StreamTask] = []
        # Partitions to pause once the assignment that brought them is in force:
        # a pause inside on_assign, before the consumer applies the assignment,
        # is ignored (by librdkafka and the embedded broker alike).
        self.to_pause: list[Any] = []

    def assigned(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.commits is not None
        self.to_restore.extend(self._manager.assign(partitions))
        # librdkafka keeps a partition paused across a rebalance that gives it
        # back: match the partitions to whether input is paused now (a commit
        # postponed by a down sink), or they would stay paused for ever. A
        # restoring task's partitions wait for its restore.
        if self.commits.paused:
            self.to_pause = [*self.to_pause, *partitions]
        else:
            waiting = [tp for tp in partitions if self._manager.is_held(tp.topic, tp.partition)]
            consumer.resume(self.commits.resumable(partitions))
            self.to_pause = [*self.to_pause, *waiting]

    def revoked(self, consumer: Any, partitions: list[Any]) -> None:
        assert self.commits is not None
        manager = self._manager
        committed = False
        was_paused = self.commits.paused
        if manager.active:
            try:
                committed = self.commits.commit()
                if not committed:
                    log.warning("%s: giving up partitions without committing", self._name)
            except StreamsException as error:
                log.warning(
                    "%s: could not commit before giving up partitions: %s", self._name, error
                )
            if committed:
                # Their stores are flushed and logged: a task that moves to another
                # member, or comes back after a restart, restores only the tail.
                write_checkpoints(self._name, consumer, manager.running)
            self.commits.cancel_retry()
        # Partitions this member keeps: with cooperative rebalancing, a revoke
        # takes only some (with eager rebalancing, all).
        gone = {(tp.topic, tp.partition) for tp in partitions}
        kept = [tp for tp in consumer.assignment() if (tp.topic, tp.partition) not in gone]
        if manager.active and not committed and not self.commits.guarantee.keeps_uncommitted_tasks:
            # Whoever gets these tasks restores them (runtime/guarantees.py); so do
            # the tasks of the partitions kept, rebuilt here from their changelogs
            # and their committed offsets.
            self.close(list(manager.active))
            if kept:
                self._rebuild(consumer, kept)
        elif was_paused and kept:
            # The postponed commit is cancelled: the partitions kept read again
            # (the next commit retries the sink, and pauses them if it fails).
            consumer.resume(self.commits.resumable(kept))
        # Suspend rather than close: a task assigned back to us at the end of this
        # rebalance resumes without restoring its stores (Kafka Streams does the same).
        dropped = manager.drop(partitions)
        for task in dropped:
            self._restorer.forget(task.id)
        manager.suspend(dropped)

    def lost(self, partitions: list[Any]) -> None:
        self.close([task.id for task in self._manager.drop(partitions)])

    def close(self, task_ids: list[TaskId]) -> None:
        """Close tasks; those still restoring checkpoint how far they got first."""
        for task_id in task_ids:
            self._restorer.forget(task_id)
        self._manager.close(task_ids)

    def redo(self, consumer: Any) -> None:
        """After an aborted transaction the tasks' stores hold uncommitted changes:
        drop the tasks, rebuild them from their (committed) changelogs, and rewind
        the input to the committed offsets."""
        self.close(list(self._manager.active))
        self._manager.close_all()
        self.to_restore = []
        self._rebuild(consumer, consumer.assignment())

    def _rebuild(self, consumer: Any, partitions: list[Any]) -> None:
        """New tasks for `partitions` (restored from their changelogs), reading again
        from the committed offsets."""
        self.assigned(consumer, partitions)
        for tp in consumer.committed(partitions, timeout=30):
            if tp.offset < 0:
                tp.offset = (
                    OFFSET_BEGINNING if self._auto_offset_reset == "earliest" else OFFSET_END
                )
            consumer.seek(tp)


def write_checkpoints(name: str, consumer: Any, tasks: list[StreamTask]) -> None:
    for task in tasks:
        try:
            task.state.write_checkpoint(consumer)
        except Exception as error:  # no checkpoint only means a full restore later
            log.warning("%s: no checkpoint for task %s: %s", name, task.id, error)
