"""StreamWorker: one consumer, one producer, and the tasks of their partitions.

Kafka Streams calls it a StreamThread. Its loop tells the story of a batch:

    poll  -> consume up to max_poll_records messages
    task  -> each message through its task's nodes (runtime/processing.py)
    time  -> fire due stream-time and wall-clock punctuators
    commit-> every commit_interval_ms: see `commit` for the order

Rebalances happen inside `consume()`: librdkafka calls `_on_revoke` (commit,
checkpoint, suspend the tasks) and `_on_assign` (resume the tasks that came
back, create the others; they start from the group's committed offsets, after
their stores are restored from the changelogs at the top of the next loop).

Under exactly_once_v2 the commit is a Kafka transaction (runtime/transactions.py):
what the tasks produced and the offsets they consumed commit together, and an
aborted transaction makes the worker rebuild its tasks from their changelogs.
"""

from __future__ import annotations

import enum
import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, OFFSET_END, Admin, Broker, Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import RetriableError, StreamsException, TopicflowError
from topicflow.processor.api import PunctuationType
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.processing import BatchProcessor, Routes, WorkerMetrics
from topicflow.runtime.record_collector import FlushTimeout, RecordCollector
from topicflow.runtime.replay import OriginFilter
from topicflow.runtime.standby import StandbyTasks, standby_placement, stateful_subtopologies
from topicflow.runtime.task import StreamTask, TaskId
from topicflow.runtime.transactions import TransactionAborted, Transactions, transactional_id
from topicflow.state.stores import StoreSpec
from topicflow.topology.topology import SubTopology

log = logging.getLogger(__name__)

# How long one commit waits for the producer to have every record acknowledged;
# past it the commit is postponed (input paused) and tried again, for up to
# task_timeout_ms in all (a broker outage).
FLUSH_TIMEOUT_S = 10.0
# A failed offset commit (the broker is away) is logged at most this often.
COMMIT_FAILURE_LOG_EVERY_S = 30.0
# Backoff when a task cannot flush (an external system is down): first retry
# after the minimum, doubling up to the maximum, so a long outage costs one
# log line and one attempt per half minute.
RETRY_BACKOFF_MIN_S = 0.5
RETRY_BACKOFF_MAX_S = 30.0


def restore_consumer_config(config: StreamsConfig, client_id: str) -> dict[str, Any]:
    """The settings of a consumer of changelogs: restore's, and the standbys'."""
    conf = config.base_client_config()
    conf.update(
        {
            # Never subscribed and never committing: only assign() is used. The
            # group still names one: on Heroku's basic plans every group must be
            # created beforehand (bin/heroku-setup creates this one).
            "group.id": f"{config.application_id}-restore",
            "enable.auto.commit": False,
            "client.id": client_id,
            **RESTORE_CONSUMER_CONFIG,
        }
    )
    return conf


# Standby tasks: records applied per loop iteration at most (they must not hold
# up processing), how long after a rebalance to place them (the group's
# assignment settles), and how often to look again.
STANDBY_BATCH = 5_000
STANDBY_SETTLE_S = 1.0
STANDBY_REFRESH_S = 5.0

# librdkafka settings of the restore consumer (bench/restore.py measures them).
RESTORE_CONSUMER_CONFIG: dict[str, Any] = {
    # Large fetches: restore is bulk reading.
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 65536,
    # librdkafka >= 2.1 waits a second before fetching again once its queue is
    # full: restore drains the queue at once, so retry soon.
    "fetch.queue.backoff.ms": 10,
    # A fetch waiting for data blocks the watermark query of the next task on the
    # same connection (librdkafka's default wait: 500 ms per task restored).
    "fetch.wait.max.ms": 10,
}


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
        self._tasks: dict[TaskId, StreamTask] = {}
        self._routes: Routes = {}
        self._stop = threading.Event()
        self.errors = ErrorHandling(config, self.metrics)
        self._processor = BatchProcessor(config, self.metrics, self.errors)
        self._consumer: Consumer | None = None
        self._collector: RecordCollector | None = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        # Set while a commit waits for a task that could not flush: input is paused.
        self._retry_at: float | None = None
        self._backoff = RETRY_BACKOFF_MIN_S
        # Since when the broker has not acknowledged a flush (None: it has).
        self._unacknowledged_since: float | None = None
        self._commit_failure_logged = -COMMIT_FAILURE_LOG_EVERY_S
        # Tasks created by the last assignment whose stores are not restored yet.
        self._to_restore: list[StreamTask] = []
        # Revoked tasks, kept until the rebalance ends in case they come back.
        self._suspended: dict[TaskId, StreamTask] = {}
        self._callback_error: BaseException | None = None
        self._transactions: Transactions | None = None
        # (records consumed, records sent) at the last commit: an idle interval
        # commits nothing (no empty transaction, no repeated offset commit).
        self._committed_progress = (0, 0)
        # Distinguishes this process's transactional ids from another instance's.
        self._instance = instance
        self._restore_consumer: Consumer | None = None
        self._store_specs = store_specs
        # num_standby_replicas: warm copies of other members' stateful tasks.
        self._stateful = stateful_subtopologies(subtopologies)
        self._standbys: StandbyTasks | None = None
        self._standbys_due = 0.0  # when to place standbys again (monotonic)
        self._admin: Admin | None = None

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
        return self._tasks

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

    def _loop(self) -> None:
        config = self._config
        consumer_config = config.consumer_client_config()
        consumer_config["client.id"] = f"{consumer_config['client.id']}-{self.index}-consumer"
        if config.group_instance_id:
            consumer_config["group.instance.id"] = f"{config.group_instance_id}-{self.index}"
        producer_config = config.producer_client_config()
        producer_config["client.id"] = f"{producer_config['client.id']}-{self.index}-producer"
        admin = self._broker.admin()

        def partition_count(topic: str) -> int:
            counts = admin.partition_counts([topic], timeout=10.0)
            if topic not in counts:
                raise StreamsException(f"output topic {topic!r} does not exist; create it first")
            return counts[topic]

        if config.exactly_once:
            producer_config["transactional.id"] = transactional_id(
                config.application_id, self.index, self._instance
            )
        self._consumer = consumer = self._broker.consumer(consumer_config)
        producer = self._broker.producer(producer_config)
        self._collector = collector = RecordCollector(
            producer,
            partition_count,
            None if config.exactly_once else self.errors,
            None if config.exactly_once else config.task_timeout_ms,
        )
        self.errors.sender = collector
        if config.exactly_once:
            self._transactions = Transactions(producer, consumer)
            self._transactions.start()
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

        max_records = config.max_poll_records
        poll_timeout = config.poll_ms / 1000
        commit_interval = config.commit_interval_ms / 1000
        next_commit = time.monotonic() + commit_interval
        process_batch = self._processor.process_batch
        consume = consumer.consume
        if config.tune_gc:
            tune_garbage_collector()

        while not self._stop.is_set():
            # What is ready now, up to a batch. librdkafka's consume() with a timeout
            # waits for a full batch: records trickling in would wait up to poll_ms
            # (at 10k records/s, 100 ms for 1000). When nothing is ready, wait for
            # the first record only; the rest follows on the next turn.
            messages = consume(max_records, 0)
            if not messages:
                messages = consume(1, poll_timeout)
            if self._callback_error is not None:
                raise self._callback_error
            if self._to_restore:
                # Before any record of a new task: its stores must hold their changelog.
                self._restore()
            if messages:
                process_batch(messages, self._routes)
                collector.poll()
                self._punctuate(PunctuationType.STREAM_TIME)
            self._punctuate(PunctuationType.WALL_CLOCK_TIME)
            now = time.monotonic()
            if self._standbys is not None:
                if now >= self._standbys_due:
                    self._place_standbys(now)
                self.metrics.standby_records += self._standbys.poll(STANDBY_BATCH)
            if self._retry_at is not None:
                if now >= self._retry_at:
                    self.commit()
            elif now >= next_commit or self._commit_requested():
                self.commit()
                next_commit = now + commit_interval

        self._set_state(WorkerState.PENDING_SHUTDOWN)
        self._close_clients(clean=True)

    # -- restore -------------------------------------------------------------------

    def _restore(self) -> None:
        """Restore the stores of newly assigned tasks from their changelogs (blocking).

        Runs in the poll loop, not in the rebalance callback; librdkafka keeps the
        group membership alive meanwhile (heartbeats run on its own thread), and
        messages of these tasks already consumed wait until restore is done.
        """
        tasks, self._to_restore = self._to_restore, []
        if self._restore_consumer is None:
            base = self._config.base_client_config()["client.id"]
            client_id = f"{base}-{self.index}-restore-consumer"
            self._restore_consumer = self._broker.consumer(
                restore_consumer_config(self._config, client_id)
            )
        tasks = [task for task in tasks if task.id in self._tasks]
        stamping = self._config.stamps_replays
        committed = self._committed({task.id for task in tasks}) if stamping else {}
        for task in tasks:
            # Idempotent state: the task resumes at its committed offset, with the
            # table of origins committed beside it.
            replay_from, metadata = committed.get(task.id, (-1, []))
            if task.origins is not None:
                for text in metadata:
                    task.origins.positions.update(OriginFilter.decode(text).positions)
            if task.state.needs_restore:
                self.metrics.restored_records += task.state.restore(
                    self._restore_consumer, replay_from if stamping else None
                )

    def _committed(self, task_ids: set[TaskId]) -> dict[TaskId, tuple[int, list[str]]]:
        """Per task: the group's committed offset of its input (-1: none) and the
        metadata committed with it."""
        assert self._consumer is not None
        partitions = [
            TopicPartition(topic, task_id.partition)
            for topic, sub in self._subtopology_of.items()
            for task_id in task_ids
            if task_id.subtopology == sub.id
        ]
        if not partitions:
            return {}
        committed: dict[TaskId, tuple[int, list[str]]] = {}
        for tp in self._consumer.committed(partitions, 30):
            task_id = TaskId(self._subtopology_of[tp.topic].id, tp.partition)
            offset, metadata = committed.get(task_id, (-1, []))
            if tp.metadata:
                metadata.append(tp.metadata)
            committed[task_id] = (max(offset, tp.offset), metadata)
        return committed

    # -- standby tasks -------------------------------------------------------------

    def _place_standbys(self, now: float) -> None:
        """Keep on standby the tasks the group's description gives this member.

        Every member computes the same placement (see runtime/standby.py); the
        description is read again after each rebalance and every few seconds,
        since another member's rebalance does not always reach this one.
        """
        assert self._standbys is not None and self._admin is not None
        assert self._consumer is not None
        self._standbys_due = now + STANDBY_REFRESH_S
        try:
            members = self._admin.group_members(self._config.application_id, 5.0)
        except Exception as error:  # placement waits; processing goes on
            log.warning("%s: cannot describe the group for standby tasks: %s", self.name, error)
            return
        me = self._consumer.memberid()
        if members is None or me is None:
            self._standbys_due = now + STANDBY_SETTLE_S  # rebalancing: soon again
            return
        placement = standby_placement(
            members, self._subtopology_of, self._stateful, self._config.num_standby_replicas
        )
        wanted = placement.get(me, set()) - set(self._tasks)
        self._standbys.update(wanted)
        if self._config.stamps_replays and wanted:
            committed = self._committed(wanted)
            self._standbys.raise_floors({task: offset for task, (offset, _) in committed.items()})

    # -- time ----------------------------------------------------------------------

    def _punctuate(self, ptype: PunctuationType) -> None:
        for task in self._tasks.values():
            now = task.stream_time if ptype is PunctuationType.STREAM_TIME else task.wall_clock_ms()
            if now >= 0:
                task.punctuate(ptype, now)

    def _commit_requested(self) -> bool:
        return any([task.take_commit_request() for task in self._tasks.values()])

    # -- the commit cycle ----------------------------------------------------------

    def commit(self) -> bool:
        """Commit the progress of every task, in this order (at-least-once):

        1. each task flushes, upstream nodes first: state stores write their
           caches through (forwarding the results downstream) and their
           changelogs; sinks write their batches to external systems;
        2. the producer flushes: every output and changelog record of the
           processed input is acknowledged by the broker;
        3. the consumer commits each partition's position (the next offset to read).

        If a sink cannot write (RetriableError), nothing is committed: input is
        paused and the commit retried with backoff. So too if step 2 times out
        (the broker is away), for up to task_timeout_ms, after which the worker
        stops; if a record failed in step 2, nothing is committed and the worker
        stops. Either way records processed since the
        last commit are processed again, so output may repeat but is never lost.
        Returns True when the offsets were committed.
        """
        assert self._collector is not None and self._consumer is not None
        try:
            for task in self._tasks.values():
                task.flush()
        except RetriableError as error:
            self._postpone_commit(error)
            return False
        m = self.metrics
        # Skipped records move positions too: count them as progress.
        seen = (
            m.records_consumed
            + m.deserialization_errors
            + m.invalid_timestamps
            + m.duplicates_skipped
        )
        progress = (seen + m.processing_errors, self._collector.sent)  # dead letters included
        if progress == self._committed_progress and self._retry_at is None:
            return True  # nothing consumed or produced since the last commit
        routes = [
            route
            for by_partition in self._routes.values()
            for route in by_partition.values()
            if route.position >= 0
        ]
        if self._config.stamps_replays:
            # Idempotent state: each task's table of origins commits with its offsets.
            metadata = {
                task.id: task.origins.encode()
                for task in self._tasks.values()
                if task.origins is not None
            }
            offsets = [
                TopicPartition(r.topic, r.partition, r.position, metadata[r.task.id])
                for r in routes
            ]
        else:
            offsets = [TopicPartition(r.topic, r.partition, r.position) for r in routes]
        if self._transactions is not None:
            return self._commit_transaction(offsets, progress)
        if not self._flush_producer():
            return False
        self.metrics.records_produced = self._collector.sent
        self._resume_if_paused()
        try:
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as error:
            # A rebalance took the partitions (the new owner redoes what we did
            # since the last commit), or the broker is away (the next commit
            # covers these offsets too). Output may repeat; nothing is lost.
            now = time.monotonic()
            if now - self._commit_failure_logged >= COMMIT_FAILURE_LOG_EVERY_S:
                self._commit_failure_logged = now
                log.warning(
                    "%s: commit failed (%s); records since the last commit will be "
                    "processed again unless a later commit succeeds",
                    self.name,
                    error,
                )
            return False
        if offsets:
            self.metrics.commits += 1
        self._committed_progress = progress
        return True

    def _commit_transaction(self, offsets: list[Any], progress: tuple[int, int]) -> bool:
        """Exactly-once: the outputs, changelogs and input offsets commit as one transaction."""
        assert self._transactions is not None and self._collector is not None
        try:
            self._collector.flush(FLUSH_TIMEOUT_S)
            self._transactions.commit(offsets)
        except (TransactionAborted, StreamsException) as error:
            if isinstance(error, TransactionAborted) or self._transactions.open:
                self._transactions.abort()
                log.warning("%s: %s", self.name, error)
                self._redo_uncommitted_work()
                if not self._transactions.open:
                    self._transactions.begin()
                return False
            raise
        self.metrics.records_produced = self._collector.sent
        self.metrics.commits += 1
        self._committed_progress = progress
        self._resume_if_paused()
        return True

    def _redo_uncommitted_work(self) -> None:
        """After an abort: the tasks' state holds uncommitted changes. Drop the tasks,
        rebuild them from their (committed) changelogs, and rewind the input to the
        committed offsets."""
        assert self._consumer is not None
        consumer = self._consumer
        self._close_tasks([*self._tasks.values(), *self._suspended.values()])
        self._tasks.clear()
        self._suspended.clear()
        self._routes.clear()
        self._to_restore = []
        assignment = consumer.assignment()
        self._on_assign(consumer, assignment)
        for tp in consumer.committed(assignment, timeout=30):
            if tp.offset < 0:
                tp.offset = (
                    OFFSET_BEGINNING if self._config.auto_offset_reset == "earliest" else OFFSET_END
                )
            consumer.seek(tp)

    def _resume_if_paused(self) -> None:
        if self._retry_at is not None:
            assert self._consumer is not None
            log.info("%s: flushed after a retry; resuming input", self.name)
            self._retry_at = None
            self._backoff = RETRY_BACKOFF_MIN_S
            self._consumer.resume(self._consumer.assignment())

    def _flush_producer(self) -> bool:
        """Step 2 of the commit; False: not every record is acknowledged yet."""
        assert self._collector is not None
        try:
            self._collector.flush(FLUSH_TIMEOUT_S)
        except FlushTimeout as error:
            self._wait_for_broker(error)
            return False
        self._unacknowledged_since = None
        return True

    def _wait_for_broker(self, error: FlushTimeout) -> None:
        """The broker has not acknowledged every record: postpone the commit, as for a
        sink that cannot write, but only for task_timeout_ms (Kafka Streams' rule)."""
        now = time.monotonic()
        if self._unacknowledged_since is None:
            self._unacknowledged_since = now
        waited = now - self._unacknowledged_since
        timeout_s = self._config.task_timeout_ms / 1000
        if waited >= timeout_s:
            raise StreamsException(
                f"{error.remaining} records not acknowledged by the broker for {waited:.0f} s "
                f"(task_timeout_ms={self._config.task_timeout_ms}); offsets not committed, so "
                "they are processed again after a restart; check that Kafka is reachable"
            )
        self._postpone_commit(error)

    def _postpone_commit(self, error: TopicflowError) -> None:
        assert self._consumer is not None
        if self._retry_at is None:
            self._consumer.pause(self._consumer.assignment())
        log.warning(
            "%s: commit postponed, input paused: %s; retrying in %.1f s",
            self.name,
            error,
            self._backoff,
        )
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_BACKOFF_MAX_S)

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

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            sub = self._subtopology_of.get(tp.topic)
            if sub is None:
                continue
            task_id = TaskId(sub.id, tp.partition)
            task = self._tasks.get(task_id)
            if task is None:
                task = self._suspended.pop(task_id, None)
                if task is not None:
                    # Ours before the rebalance: state intact. It runs again, so its
                    # checkpoint must go (a crash must not trust it).
                    task.state.discard_checkpoint()
                    self._tasks[task_id] = task
            if task is None:
                assert self._collector is not None
                task = StreamTask(
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
                )
                self._tasks[task_id] = task
                self._to_restore.append(task)
            self._routes.setdefault(tp.topic, {})[tp.partition] = task.route(tp.topic, tp.partition)
        # librdkafka keeps a partition paused across a rebalance that gives it
        # back: match the partitions to whether input is paused now (a commit
        # postponed by a down sink), or they would stay paused for ever.
        if self._retry_at is not None:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        # The group changed: place standbys again once its assignment is stable.
        self._standbys_due = time.monotonic() + STANDBY_SETTLE_S
        # Suspended tasks that did not come back belong to another member now.
        self._close_tasks(list(self._suspended.values()))
        self._suspended.clear()
        log.info(
            "%s assigned %d partitions, running tasks %s",
            self.name,
            len(partitions),
            ", ".join(str(t) for t in sorted(self._tasks)) or "none",
        )
        self._set_state(WorkerState.RUNNING)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        log.info("%s revoked %d partitions", self.name, len(partitions))
        self._set_state(WorkerState.PARTITIONS_REVOKED)
        committed = False
        if self._tasks:
            try:
                committed = self.commit()
                if not committed:
                    log.warning("%s: giving up partitions without committing", self.name)
            except StreamsException as error:
                log.warning(
                    "%s: could not commit before giving up partitions: %s", self.name, error
                )
            if committed:
                # Their stores are flushed and logged: a task that moves to another
                # member, or comes back after a restart, restores only the tail.
                self._write_checkpoints(consumer, list(self._tasks.values()))
            self._retry_at = None
            self._backoff = RETRY_BACKOFF_MIN_S
        if (
            self._tasks
            and not committed
            and (self._transactions is not None or self._config.stamps_replays)
        ):
            # Exactly-once: uncommitted changes were aborted, so the stores are ahead
            # of what counts; whoever gets these tasks restores them. Idempotent
            # state: the same, so that a replay meets restored stamps, not stores
            # that already hold it.
            self._close_tasks(list(self._tasks.values()))
            self._tasks.clear()
            self._routes.clear()
        # Suspend rather than close: a task assigned back to us at the end of this
        # rebalance resumes without restoring its stores (Kafka Streams does the same).
        for task in self._drop_partitions(partitions):
            self._suspended[task.id] = task

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # The partitions already belong to someone else: do not commit, do not resume.
        self._set_state(WorkerState.PARTITIONS_REVOKED)
        self._close_tasks(self._drop_partitions(partitions))

    def _drop_partitions(self, partitions: list[Any]) -> list[StreamTask]:
        """Forget the routes of `partitions`; the tasks left with none are taken out
        (and out of restore) and returned, for the caller to suspend or close."""
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for topic, by_partition in self._routes.items():
            for partition in [p for p in by_partition if (topic, p) in gone]:
                del by_partition[partition]
        still_read = {r.task.id for by_p in self._routes.values() for r in by_p.values()}
        dropped = [self._tasks.pop(t) for t in [t for t in self._tasks if t not in still_read]]
        self._to_restore = [t for t in self._to_restore if t.id in self._tasks]
        return dropped

    def _write_checkpoints(self, consumer: Any, tasks: list[StreamTask]) -> None:
        for task in tasks:
            try:
                task.state.write_checkpoint(consumer)
            except Exception as error:  # no checkpoint only means a full restore later
                log.warning("%s: no checkpoint for task %s: %s", self.name, task.id, error)

    def _close_tasks(self, tasks: list[StreamTask]) -> None:
        for task in tasks:
            try:
                task.close()
            except StreamsException as error:
                log.warning("%s: %s", self.name, error)

    # -- shutdown ----------------------------------------------------------------

    def _close_clients(self, clean: bool) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        try:
            if clean and self.commit():
                self._write_checkpoints(consumer, [*self._tasks.values()])
            elif not clean:
                # After a failure, what was processed may not be in the producer:
                # drop the positions so that closing does not commit them (nor
                # says it resumes input: it leaves).
                self._routes.clear()
                self._retry_at = None
                if self._transactions is not None:
                    self._transactions.abort()
        finally:
            # close() leaves the group at once, so the others take over without
            # waiting for the session timeout. It runs on_revoke, which commits
            # again: a no-op after the commit above.
            try:
                consumer.close()
                if self._restore_consumer is not None:
                    self._restore_consumer.close()
                if self._standbys is not None:
                    self._standbys.close()
            finally:
                self._consumer = None
                self._restore_consumer = None
                self._close_tasks([*self._tasks.values(), *self._suspended.values()])
                self._tasks.clear()
                self._suspended.clear()
                self._routes.clear()


_gc_tuned = False
# Young-generation collections every this many allocations of tracked objects,
# and a middle-generation one every this many of those.
GC_YOUNG_THRESHOLD = 50_000
GC_MIDDLE_THRESHOLD = 50


def tune_garbage_collector() -> None:
    """Collect garbage for a stream processor, once per process.

    The per-record path makes short-lived acyclic objects (consumed messages,
    keys, values) that reference counting frees; the cyclic collector finds
    nothing in them, yet by default it runs every 700 allocations and, now and
    then, walks every object the application holds. Objects alive at start
    (modules, the topology) are frozen out of its walks, and it runs about 70
    times less often: about 10% of the Aggregator's CPU time (bench/services.py).
    """
    global _gc_tuned
    if _gc_tuned:
        return
    _gc_tuned = True
    gc.collect()
    gc.freeze()
    _, _, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, oldest)
