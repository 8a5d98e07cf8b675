"""The commit cycle of one stream worker: the order that makes at-least-once hold.

1. each running task flushes, upstream nodes first: state stores write their
   caches through (forwarding the results downstream) and their changelogs;
   sinks write their batches to external systems;
2. the producer flushes: every output and changelog record of the processed
   input is acknowledged by the broker;
3. the consumer commits each partition's position (the next offset to read),
   with what the guarantee adds to it (runtime/guarantees.py).

If a sink cannot write (RetriableError), nothing is committed: input is
paused and the commit retried with backoff. So too if step 2 times out (the
broker is away), for up to task_timeout_ms, after which the worker stops; if
a record failed in step 2, nothing is committed and the worker stops. Either
way records processed since the last commit are processed again, so output
may repeat but is never lost. Under exactly_once_v2, steps 2 and 3 are one
Kafka transaction (`TransactionalCommit`, runtime/transactions.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.brokers.base import Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import RetriableError, StreamsException, TopicflowError
from topicflow.runtime.guarantees import AtLeastOnce
from topicflow.runtime.processing import WorkerMetrics
from topicflow.runtime.record_collector import FlushTimeout, RecordCollector
from topicflow.runtime.task_manager import TaskManager

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


class CommitCycle:
    def __init__(
        self,
        name: str,
        config: StreamsConfig,
        consumer: Consumer,
        collector: RecordCollector,
        tasks: TaskManager,
        metrics: WorkerMetrics,
        guarantee: AtLeastOnce,
    ) -> None:
        self._name = name
        self._config = config
        self._consumer = consumer
        self._collector = collector
        self._tasks = tasks
        self._metrics = metrics
        self.guarantee = guarantee
        # Set while a commit waits for a task that could not flush: input is paused.
        self.retry_at: float | None = None
        self._backoff = RETRY_BACKOFF_MIN_S
        # Since when the broker has not acknowledged a flush (None: it has).
        self._unacknowledged_since: float | None = None
        self._failure_logged = -COMMIT_FAILURE_LOG_EVERY_S
        # (records consumed, records sent) at the last commit: an idle interval
        # commits nothing (no empty transaction, no repeated offset commit).
        self._committed_progress = (0, 0)

    @property
    def paused(self) -> bool:
        return self.retry_at is not None

    def commit(self) -> bool:
        """Commit the progress of every running task (see the module's docstring).
        Returns True when the offsets were committed."""
        try:
            for task in self._tasks.running:
                task.flush()
        except RetriableError as error:
            self._postpone(error)
            return False
        m = self._metrics
        # Skipped records move positions too: count them as progress.
        seen = (
            m.records_consumed
            + m.deserialization_errors
            + m.invalid_timestamps
            + m.duplicates_skipped
        )
        progress = (seen + m.processing_errors, self._collector.sent)  # dead letters included
        if progress == self._committed_progress and self.retry_at is None:
            return True  # nothing consumed or produced since the last commit
        routes = [
            route
            for by_partition in self._tasks.routes.values()
            for route in by_partition.values()
            if route.position >= 0
        ]
        if not self._commit_offsets(self.guarantee.offsets(routes)):
            return False
        self._committed_progress = progress
        return True

    def _commit_offsets(self, offsets: list[TopicPartition]) -> bool:
        """Steps 2 and 3."""
        if not self._flush_producer():
            return False
        self._metrics.records_produced = self._collector.sent
        self.resume_if_paused()
        try:
            if offsets:
                self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as error:
            # A rebalance took the partitions (the new owner redoes what we did
            # since the last commit), or the broker is away (the next commit
            # covers these offsets too). Output may repeat; nothing is lost.
            now = time.monotonic()
            if now - self._failure_logged >= COMMIT_FAILURE_LOG_EVERY_S:
                self._failure_logged = now
                log.warning(
                    "%s: commit failed (%s); records since the last commit will be "
                    "processed again unless a later commit succeeds",
                    self._name,
                    error,
                )
            return False
        if offsets:
            self._metrics.commits += 1
        return True

    def _flush_producer(self) -> bool:
        """Step 2; False: not every record is acknowledged yet."""
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
        self._postpone(error)

    def _postpone(self, error: TopicflowError) -> None:
        if self.retry_at is None:
            self._consumer.pause(self._consumer.assignment())
        log.warning(
            "%s: commit postponed, input paused: %s; retrying in %.1f s",
            self._name,
            error,
            self._backoff,
        )
        self.retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_BACKOFF_MAX_S)

    def resume_if_paused(self) -> None:
        if self.retry_at is not None:
            log.info("%s: flushed after a retry; resuming input", self._name)
            self.cancel_retry()
            self._consumer.resume(self.resumable(self._consumer.assignment()))

    def cancel_retry(self) -> None:
        self.retry_at = None
        self._backoff = RETRY_BACKOFF_MIN_S

    def resumable(self, partitions: list[Any]) -> list[Any]:
        """`partitions` but those of restoring tasks, which stay paused until restored,
        and those whose task's queue is full (runtime/partition_group.py)."""
        tasks = self._tasks
        return [
            tp
            for tp in partitions
            if not tasks.is_held(tp.topic, tp.partition)
            and not tasks.is_full(tp.topic, tp.partition)
        ]
