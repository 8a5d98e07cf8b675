"""StreamWorker: one consumer, one producer, and the tasks of their partitions.

Kafka Streams calls it a StreamThread. Its loop tells the story of a batch:

    poll    -> consume up to max_poll_records messages
    restore -> one batch of changelog records for the tasks still restoring
    tasks   -> each message through its task's nodes (runtime/processing.py);
               a task reading several partitions queues them, and takes them
               in timestamp order (runtime/partition_group.py)
    time    -> fire due stream-time and wall-clock punctuators
    commit  -> every commit_interval_ms (runtime/commit.py)

Rebalances happen inside `consume()`: librdkafka calls `_on_revoke` (commit,
checkpoint, suspend the tasks) and `_on_assign` (resume the tasks that came
back, create the others), which runtime/rebalance.py carries out. The
TaskManager (runtime/task_manager.py) keeps every task in one state; a created
task restores its stores from their changelogs a bounded batch per loop turn
(runtime/restorer.py), while the other tasks go on processing, and starts
from the group's committed offsets.

Under exactly_once_v2 the commit is a Kafka transaction (runtime/transactions.py):
what the tasks produced and the offsets they consumed commit together, and an
aborted transaction makes the worker rebuild its tasks from their changelogs.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from topicflow.brokers.base import Admin, Broker, Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import TopicflowError
from topicflow.processor.api import PunctuationType
from topicflow.runtime.commit import CommitCycle
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.gc_tuning import tune_garbage_collector
from topicflow.runtime.guarantees import guarantee_of
from topicflow.runtime.partition_group import ConsumerLag, PartitionGroup
from topicflow.runtime.processing import BatchProcessor, WorkerMetrics
from topicflow.runtime.rebalance import Rebalance, write_checkpoints
from topicflow.runtime.record_collector import RecordCollector
from topicflow.runtime.restorer import Restorer, committed_offsets
from topicflow.runtime.source_route import SourceRoute, TaskId
from topicflow.runtime.standby import STANDBY_SETTLE_S, StandbyTasks, stateful_subtopologies
from topicflow.runtime.task import StreamTask
from topicflow.runtime.task_manager import TaskManager
from topicflow.runtime.transactions import TransactionalCommit, Transactions
from topicflow.runtime.worker_clients import (
    partition_counter,
    restore_consumer_config,
    worker_client_configs,
)
from topicflow.state.stores import StoreSpec
from topicflow.topology.topology import SubTopology

log = logging.getLogger(__name__)

# How long one restore read waits for changelog records when no input is at
# hand (with input, it takes what is there and lets processing go on).
RESTORE_WAIT_S = 0.05

# Standby tasks: records applied per loop iteration at most (they must not hold
# up processing).
STANDBY_BATCH = 5_000


class WorkerState(enum.Enum):
    CREATED = "CREATED"
    STARTING = "STARTING"
    PARTITIONS_REVOKED = "PARTITIONS_REVOKED"
    RUNNING = "RUNNING"
    PENDING_SHUTDOWN = "PENDING_SHUTDOWN"
    DEAD = "DEAD"


class StreamWorker:
    def __init__(
        self,
        index: int,
        subtopologies: list[SubTopology],
        config: StreamsConfig,
        broker: Broker,
        resolve_topic: Callable[[str], str],
        on_state_change: Callable[[StreamWorker, WorkerState], None],
        store_specs: dict[str, StoreSpec] | None = None,
        instance: str | None = None,
        global_stores: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.name = f"{config.application_id}-StreamWorker-{index}"
        self.state = WorkerState.CREATED
        self.metrics = WorkerMetrics()
        self.error: BaseException | None = None
        self._config = config
        self._broker = broker
        self._resolve = resolve_topic
        self._on_state_change = on_state_change
        self._subtopology_of: dict[str, SubTopology] = {
            resolve_topic(topic): sub for sub in subtopologies for topic in sub.source_topics
        }
        self._manager = TaskManager(
            self.name, self._subtopology_of, self._create_task, self._create_group
        )
        self._stop = threading.Event()
        self.errors = ErrorHandling(config, self.metrics)
        self._processor = BatchProcessor(config, self.metrics, self.errors)
        self._consumer: Consumer | None = None
        self._collector: RecordCollector | None = None
        self._commits: CommitCycle | None = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._restorer = Restorer(
            config,
            broker,
            f"{config.base_client_config()['client.id']}-{index}-restore-consumer",
            self._committed,
            self.metrics,
        )
        self._rebalance = Rebalance(
            self.name, self._manager, self._restorer, config.auto_offset_reset
        )
        self._callback_error: BaseException | None = None
        # Distinguishes this process's transactional ids from another instance's.
        self._instance = instance
        self._store_specs = store_specs
        # The instance's global stores, loaded before this worker started.
        self._global_stores = global_stores
        # num_standby_replicas: warm copies of other members' stateful tasks.
        self._stateful = stateful_subtopologies(subtopologies)
        self._standbys: StandbyTasks | None = None
        self._standbys_due = 0.0  # when to place standbys again (monotonic)
        self._admin: Admin | None = None
        # What the consumer knows of each partition's lag, for max_task_idle_ms.
        self._lag: ConsumerLag | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        """Ask the loop to stop after the current batch (it then commits and leaves)."""
        self._stop.set()

    def join(self, timeout: float | None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def tasks(self) -> dict[TaskId, StreamTask]:
        """The active tasks: restoring and running."""
        return self._manager.active

    def _set_state(self, state: WorkerState) -> None:
        self.state = state
        self._on_state_change(self, state)

    def _run(self) -> None:
        self._set_state(WorkerState.STARTING)
        try:
            self._loop()
        except BaseException as error:
            self.error = error
            # Our own errors explain themselves in one line; anything else is a bug
            # (ours or a library's) and needs its traceback.
            log.error(
                "%s stopped: %s",
                self.name,
                error,
                exc_info=not isinstance(error, TopicflowError),
            )
            self._close_clients(clean=False)
        finally:
            self._set_state(WorkerState.DEAD)

    def _start_clients(self) -> tuple[Consumer, RecordCollector]:
        config = self._config
        consumer_config, producer_config = worker_client_configs(config, self.index, self._instance)
        admin = self._broker.admin()
        self._consumer = consumer = self._broker.consumer(consumer_config)
        self._lag = ConsumerLag(consumer, config.auto_offset_reset)
        producer = self._broker.producer(producer_config)
        self._collector = collector = RecordCollector(
            producer,
            partition_counter(admin),
            None if config.exactly_once else self.errors,
            None if config.exactly_once else config.task_timeout_ms,
        )
        self.errors.sender = collector
        parts = (self.name, config, consumer, collector, self._manager, self.metrics)
        if config.exactly_once:
            transactions = Transactions(producer, consumer)
            transactions.start()
            self._commits = TransactionalCommit(
                *parts,
                guarantee_of(config),
                transactions=transactions,
                redo=self._redo_uncommitted_work,
            )
        else:
            self._commits = CommitCycle(*parts, guarantee_of(config))
        self._rebalance.commits = self._commits
        if config.num_standby_replicas and self._stateful:
            self._admin = admin
            client_id = (
                f"{config.base_client_config()['client.id']}-{self.index}-"
                f"{self._instance or uuid.uuid4().hex[:12]}-standby"
            )
            self._standbys = StandbyTasks(
                config,
                self._broker,
                {sub.id: sub for sub in self._subtopology_of.values()},
                self._store_specs or {},
                client_id,
                restore_consumer_config(config, client_id),
            )
        consumer.subscribe(
            sorted(self._subtopology_of),
            on_assign=self._guarded(self._on_assign),
            on_revoke=self._guarded(self._on_revoke),
            on_lost=self._guarded(self._on_lost),
        )
        return consumer, collector

    def _loop(self) -> None:
        consumer, collector = self._start_clients()
        commits = self._commits
        assert commits is not None
        config = self._config
        max_records = config.max_poll_records
        poll_timeout = config.poll_ms / 1000
        commit_interval = config.commit_interval_ms / 1000
        next_commit = time.monotonic() + commit_interval
        process_batch = self._processor.process_batch
        manager = self._manager
        rebalance = self._rebalance
        consume = consumer.consume
        if config.tune_gc:
            tune_garbage_collector()

        while not self._stop.is_set():
            # What is ready now, up to a batch. librdkafka's consume() with a timeout
            # waits for a full batch: records trickling in would wait up to poll_ms
            # (at 10k records/s, 100 ms for 1000). When nothing is ready, wait for
            # the first record only (unless restore has work: its read waits).
            messages = consume(max_records, 0)
            if not messages and not manager.restoring:
                messages = consume(1, poll_timeout)
            if self._callback_error is not None:
                raise self._callback_error
            if rebalance.to_pause:
                consumer.pause(rebalance.to_pause)
                rebalance.to_pause = []
            if manager.restoring:
                messages = self._restore(messages)
            if messages:
                process_batch(messages, manager.routes)
            # Tasks reading several partitions: their queued records, in timestamp
            # order, as far as each may go now (runtime/partition_group.py).
            released = bool(manager.groups) and self._release_queued()
            if messages or released:
                collector.poll()
                self._punctuate(PunctuationType.STREAM_TIME)
            self._punctuate(PunctuationType.WALL_CLOCK_TIME)
            now = time.monotonic()
            if self._standbys is not None:
                if now >= self._standbys_due:
                    self._place_standbys(now)
                self.metrics.standby_records += self._standbys.poll(STANDBY_BATCH)
            if commits.retry_at is not None:
                if now >= commits.retry_at:
                    commits.commit()
            elif now >= next_commit or self._commit_requested():
                commits.commit()
                next_commit = now + commit_interval

        self._set_state(WorkerState.PENDING_SHUTDOWN)
        self._close_clients(clean=True)

    def commit(self) -> bool:
        """Commit every running task's progress now (runtime/commit.py)."""
        assert self._commits is not None
        return self._commits.commit()

    # -- restore -------------------------------------------------------------------

    def _restore(self, messages: list[Any]) -> list[Any]:
        """One step of restore; returns the messages of running tasks to process.

        The records of a restoring task wait (held back by the TaskManager);
        when its stores are complete it runs, and what it held is processed first.
        """
        manager = self._manager
        if self._rebalance.to_restore:
            # Only tasks still here: one closed since (a rebalance within the same
            # consume(), an aborted transaction's redo) may have a successor.
            active = manager.active
            tasks = [t for t in self._rebalance.to_restore if active.get(t.id) is t]
            self._rebalance.to_restore = []
            for task in self._restorer.start(tasks):
                self._restored(task)
        messages = manager.hold_back(messages)
        for task in self._restorer.read(0 if messages else RESTORE_WAIT_S):
            self._restored(task)
        return messages

    def _restored(self, task: StreamTask) -> None:
        assert self._consumer is not None and self._commits is not None
        held = self._manager.restored(task.id)
        if not self._commits.paused:
            self._consumer.resume(self._manager.partitions_of(task.id))
        if held:
            self._processor.process_batch(held, self._manager.routes)

    def _committed(self, task_ids: set[TaskId]) -> dict[TaskId, tuple[int, list[str]]]:
        assert self._consumer is not None
        return committed_offsets(self._consumer, self._subtopology_of, task_ids)

    # -- tasks reading several partitions ------------------------------------------

    def _create_group(self, routes: list[SourceRoute]) -> PartitionGroup:
        assert self._lag is not None
        config = self._config
        return PartitionGroup(
            routes,
            config.max_task_idle_ms,
            config.buffered_records_per_partition,
            self._lag,
            self.metrics,
        )

    def _release_queued(self) -> bool:
        """Process what the partition groups release; pause the partitions whose
        queue is full, resume those drained. True if any record was released."""
        assert self._consumer is not None and self._commits is not None
        now_ms = time.monotonic() * 1000
        released_any = False
        for group in self._manager.groups:
            released = group.release(now_ms)
            if released:
                released_any = True
                group.releasing = True
                try:
                    self._processor.process_batch(released, self._manager.routes)
                finally:
                    group.releasing = False
            if group.to_pause:
                self._consumer.pause(group.to_pause)
                group.to_pause = []
            if group.to_resume:
                if not self._commits.paused:
                    self._consumer.resume(group.to_resume)
                group.to_resume = []
        return released_any

    # -- standby tasks -------------------------------------------------------------

    def _place_standbys(self, now: float) -> None:
        assert self._standbys is not None and self._admin is not None
        assert self._consumer is not None
        self._standbys_due = now + self._standbys.place(
            self._admin,
            self._consumer.memberid(),
            self._subtopology_of,
            self._stateful,
            set(self._manager.active),
            self._committed if self._config.stamps_replays else None,
        )

    # -- time ----------------------------------------------------------------------

    def _punctuate(self, ptype: PunctuationType) -> None:
        for task in self._manager.running:
            now = task.stream_time if ptype is PunctuationType.STREAM_TIME else task.wall_clock_ms()
            if now >= 0:
                task.punctuate(ptype, now)

    def _commit_requested(self) -> bool:
        return any([task.take_commit_request() for task in self._manager.running])

    # -- rebalance callbacks (called inside consume()) ----------------------------

    def _guarded(
        self, callback: Callable[[Any, list[Any]], None]
    ) -> Callable[[Any, list[Any]], None]:
        """An exception raised inside a librdkafka callback does not reach the caller of
        consume() intact: keep it, and let the poll loop raise it."""

        def guarded(consumer: Any, partitions: list[Any]) -> None:
            try:
                callback(consumer, partitions)
            except BaseException as error:
                self._callback_error = error

        return guarded

    def _create_task(self, task_id: TaskId, sub: SubTopology) -> StreamTask:
        assert self._collector is not None
        return StreamTask(
            task_id,
            sub,
            self._config,
            self._collector,
            self._resolve,
            metrics=self.metrics,
            store_specs=self._store_specs,
            # Kept warm here on standby: restore goes on from where it stood.
            warm=self._standbys.take(task_id) if self._standbys is not None else None,
            errors=self.errors,
            global_stores=self._global_stores,
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        if self._lag is not None:
            self._lag.forget()
        self._rebalance.assigned(consumer, partitions)
        # The group changed: place standbys again once its assignment is stable.
        self._standbys_due = time.monotonic() + STANDBY_SETTLE_S
        log.info(
            "%s assigned %d partitions, running tasks %s",
            self.name,
            len(partitions),
            ", ".join(str(t) for t in sorted(self._manager.active)) or "none",
        )
        self._set_state(WorkerState.RUNNING)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("%s revoked %d partitions", self.name, len(partitions))
        self._set_state(WorkerState.PARTITIONS_REVOKED)
        self._rebalance.revoked(consumer, partitions)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # The partitions already belong to someone else: do not commit, do not resume.
        self._set_state(WorkerState.PARTITIONS_REVOKED)
        self._rebalance.lost(partitions)

    def _redo_uncommitted_work(self) -> None:
        assert self._consumer is not None
        self._rebalance.redo(self._consumer)

    # -- shutdown ----------------------------------------------------------------

    def _close_clients(self, clean: bool) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            if clean and self.commit():
                write_checkpoints(self.name, consumer, self._manager.running)
            elif not clean:
                # After a failure, what was processed may not be in the producer:
                # drop the positions so that closing does not commit them (nor
                # says it resumes input: it leaves).
                self._manager.routes.clear()
                if self._commits is not None:
                    self._commits.cancel_retry()
                    if isinstance(self._commits, TransactionalCommit):
                        self._commits.transactions.abort()
        finally:
            # close() leaves the group at once, so the others take over without
            # waiting for the session timeout. It runs on_revoke, which commits
            # again: a no-op after the commit above.
            try:
                consumer.close()
                self._restorer.close()
                if self._standbys is not None:
                    self._standbys.close()
            finally:
                self._consumer = None
                self._manager.close_all()
