"""The per-record path: from a consumed message to the task's nodes.

`process_batch` is the one loop every record goes through, on Kafka, on the
embedded broker and in the test driver. Per record it does: find the route of
the message's partition, pass it through the route's screen if it has one
(idempotent state drops a replay the task has seen; a task reading several
partitions queues it, to process it later in timestamp order:
runtime/partition_group.py), deserialize key and value, take the timestamp,
set the task's record context, advance stream time, call the source node.
Nothing is allocated here beyond what the user's functions allocate.

Bad input never stops the loop unless configured to: a record that cannot be
deserialized, that has no valid timestamp, or whose processing raises goes to
its exception handler (runtime/error_handling.py), which skips, counts and
dead-letters it, or stops the worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Any

from confluent_kafka import KafkaError

from topicflow.config import StreamsConfig
from topicflow.errors import HandlerFailed, StreamsException, TopologyError
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.replay import DUPLICATE, SEQUENCE_BITS
from topicflow.runtime.source_route import HELD, SourceRoute

log = logging.getLogger(__name__)

_NOT_AUTHORIZED = {
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
}

# Routes by topic, then by partition: two dict lookups per record, no tuple keys.
Routes = dict[str, dict[int, SourceRoute]]

# Log consumer errors at most this often: during a broker outage librdkafka
# reports one per failed connection attempt.
LOG_EVERY_S = 30.0


@dataclass
class WorkerMetrics:
    records_consumed: int = 0
    deserialization_errors: int = 0
    invalid_timestamps: int = 0
    processing_errors: int = 0
    # Outputs the production handler skipped (too large, unserializable, refused).
    production_errors: int = 0
    # Records an external system refused for their content (RecordsRefused).
    sink_errors: int = 0
    # Skipped records sent to errors_dead_letter_queue_topic_name.
    dead_lettered: int = 0
    consumer_errors: int = 0
    records_produced: int = 0
    commits: int = 0
    dropped_records: int = 0
    late_records: int = 0
    restored_records: int = 0
    # Idempotent state: replayed records dropped (seen upstream before, or already
    # in a restored aggregate).
    duplicates_skipped: int = 0
    replayed_updates_skipped: int = 0
    # num_standby_replicas: changelog records applied to standby tasks.
    standby_records: int = 0
    # max_task_idle_ms: records a task reading several partitions processed while
    # one of them had none buffered (possibly out of timestamp order).
    enforced_processing: int = 0

    def add(self, other: WorkerMetrics) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# What Kafka Streams counts in its dropped-records metric, by cause.
DROPPED_RECORDS = (
    "deserialization_errors",
    "invalid_timestamps",
    "processing_errors",
    "production_errors",
    "sink_errors",
    "late_records",
    "dropped_records",  # null keys or values an aggregation cannot use
)


def dropped_records_summary(metrics: dict[str, int]) -> str:
    """`dropped-records=N (cause=n, ...)`: the skips of every cause, as logged."""
    total = sum(metrics.get(name, 0) for name in DROPPED_RECORDS)
    parts = [
        f"{name.replace('dropped_records', 'null_key_or_value')}={metrics[name]}"
        for name in DROPPED_RECORDS
        if metrics.get(name)
    ]
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"dropped-records={total}{detail}, dead-lettered={metrics.get('dead_lettered', 0)}"


class BatchProcessor:
    """Runs batches of consumed messages through their tasks."""

    def __init__(
        self, config: StreamsConfig, metrics: WorkerMetrics, errors: ErrorHandling
    ) -> None:
        self._metrics = metrics
        self._errors = errors
        self._last_log: dict[str, float] = {}

    def process_batch(self, messages: list[Any], routes: Routes) -> None:
        processed = 0
        for message in messages:
            if message.error() is not None:
                self._consumer_error(message)
                continue
            route = routes[message.topic()][message.partition()]
            headers = message.headers()
            if route.screen is not None:
                # A record of a task reading several partitions waits in their queues
                # (taken in timestamp order: runtime/partition_group.py); idempotent
                # state drops a record this task saw before (an upstream replay).
                headers = route.screen(message, headers)
                if headers is HELD:
                    continue
                if headers is DUPLICATE:
                    route.last = message
                    self._metrics.duplicates_skipped += 1
                    continue
            try:
                key = message.key()
                if key is not None and route.decode_key is not None:
                    key = route.decode_key(key)
                value = message.value()
                if value is not None and route.decode_value is not None:
                    value = route.decode_value(value)
            except Exception as error:
                self._errors.deserialization_failed(
                    str(route.task.id), message, error, "deserialization"
                )
                route.last = message
                continue
            timestamp = message.timestamp()[1]
            task = route.task
            if route.extractor is not None:
                timestamp = route.extractor(timestamp, key, value, task.stream_time)
            if timestamp < 0:
                self._errors.deserialization_failed(str(route.task.id), message, None, "timestamp")
                route.last = message
                continue
            rc = task.record_context
            rc.message = message
            rc.timestamp = timestamp
            rc.headers = headers
            origin = rc.origin = route.origin
            if origin is not None:
                rc.ordinal = 0
                rc.position = message.offset() << SEQUENCE_BITS
            if timestamp > task.stream_time:  # noqa: PLR1730 - max() costs a call per record
                task.stream_time = timestamp
            try:
                route.process(key, value)
            except Exception as error:
                self._processing_error(route, message, key, value, timestamp, error)
            route.last = message
            processed += 1
        self._metrics.records_consumed += processed

    # -- the exceptional paths ------------------------------------------------------

    def _processing_error(
        self,
        route: SourceRoute,
        message: Any,
        key: Any,
        value: Any,
        timestamp: int,
        error: Exception,
    ) -> None:
        if isinstance(error, HandlerFailed):
            raise error  # a handler below (production) already decided: stop
        # A TopologyError is a programming error (e.g. forwarding to a child that
        # does not exist): skipping it would hide the bug behind a counter.
        if isinstance(error, (StreamsException, TopologyError)):
            where = f"{route.topic}[{route.partition}]@{message.offset()}"
            raise StreamsException(
                f"processing record {where} in task {route.task.id} failed: "
                f"{type(error).__name__}: {error}"
            ) from error
        task = route.task
        self._errors.processing_failed(
            str(task.id), message, key, value, timestamp, error, task.node_of(error)
        )

    def _consumer_error(self, message: Any) -> None:
        error = message.error()
        if getattr(error, "fatal", lambda: False)():
            raise StreamsException(f"consumer failed: {error.str()}")
        if error.code() in _NOT_AUTHORIZED:
            # Not transient: without the rights the worker would sit idle for ever.
            raise StreamsException(
                f"not authorized: {error.str()}; the application needs read rights on its "
                "input topics and its consumer group (the application id); on multi-tenant "
                "clusters, names must start with the tenant's prefix (KAFKA_PREFIX) and the "
                "group may have to be created first"
            )
        self._metrics.consumer_errors += 1
        self._log_limited("consumer", "consumer error: %s", error.str())

    def _log_limited(self, kind: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_log.get(kind, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_log[kind] = now
            log.warning(message, *args)
