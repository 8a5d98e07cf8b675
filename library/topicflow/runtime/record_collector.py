"""RecordCollector: sends a worker's output records through its producer.

Production is asynchronous: `send` hands the record to the producer's queue
and returns. Delivery reports are served by `poll()` after each consumed batch
(only failures reach Python, see the producer config, but librdkafka holds
every delivered record until its report is served), and `flush()` at commit
time waits for every record to be acknowledged: a commit never covers input
whose output might still be lost.

A failed delivery that concerns the record alone (too large for the topic,
refused by a policy) goes to the production exception handler, which may skip
it (runtime/error_handling.py); any other failure stops the next commit. Records
not yet acknowledged when `flush()` gives up (the broker is down) raise
`FlushTimeout`: the worker then pauses its input and flushes again later, until
`task_timeout_ms`; librdkafka keeps retrying them meanwhile.

The sinks call the client's `produce` themselves (`produce`, `on_delivery`),
with positional arguments in confluent-kafka's order: keyword arguments cost
the C client a UTF-8 decode and a hash per keyword per record (0.9 µs against
0.5 µs a call, measured alone). Only when the queue is full do they fall back
to `send`, which waits for room.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

from topicflow.brokers.base import Headers, Producer
from topicflow.errors import StreamsException
from topicflow.runtime.error_handling import ErrorHandling

log = logging.getLogger(__name__)

# A full producer queue means the broker is slower than we are: wait this long
# for room before trying again (and say so every WARN_AFTER_S).
QUEUE_FULL_WAIT_S = 0.05
WARN_AFTER_S = 10.0


class FlushTimeout(StreamsException):
    """Some records were not acknowledged within the flush's timeout (not failed)."""

    def __init__(self, remaining: int, timeout_s: float) -> None:
        super().__init__(
            f"{remaining} records not acknowledged by the broker within {timeout_s:g} s"
        )
        self.remaining = remaining


class RecordCollector:
    def __init__(
        self,
        producer: Producer,
        partition_counts: Callable[[str], int],
        errors: ErrorHandling | None = None,
        task_timeout_ms: int | None = None,
    ) -> None:
        self._producer = producer
        # The producer's message.timeout.ms when it is task_timeout_ms (not under
        # transactions): a record timed out is then the task timing out.
        self._task_timeout_ms = task_timeout_ms
        self._timed_out = 0
        # None: no failed delivery may be skipped (inside a transaction, one
        # failed send aborts the whole transaction).
        self._errors = errors
        # produce(topic, value, key, partition, on_delivery, callback, timestamp, headers)
        self.produce = producer.produce
        self._poll = producer.poll
        self._partition_counts = partition_counts
        self._partition_cache: dict[str, int] = {}
        self._failures: list[str] = []
        # Records handed to the producer; the sinks count theirs here too.
        self.sent = 0

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int,
    ) -> None:
        full_since = 0.0
        while True:
            try:
                self.produce(
                    topic, value, key, partition, self.on_delivery, None, timestamp, headers
                )
                break
            except BufferError:
                full_since = self._wait_for_room(full_since)
        self.sent += 1

    def poll(self) -> None:
        """Serve the delivery reports of records sent so far (call once per batch)."""
        self._poll(0)

    def _wait_for_room(self, full_since: float) -> float:
        """The producer's queue is full: serve delivery reports for a while, warn if it lasts."""
        now = time.monotonic()
        if not full_since:
            full_since = now
        elif now - full_since >= WARN_AFTER_S:
            log.warning(
                "producer queue full for %.0f s: the broker is not taking records; "
                "is it reachable?",
                now - full_since,
            )
            full_since = now
        self._poll(QUEUE_FULL_WAIT_S)
        return full_since

    def on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            return
        if self._errors is not None and self._errors.delivery_failed(message, error):
            return  # skipped by the production handler
        if error.code() == KafkaError._MSG_TIMED_OUT:
            self._timed_out += 1
        # Keep the first few reasons; one failure is enough to stop committing.
        if len(self._failures) < 5:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def partition_count(self, topic: str) -> int:
        count = self._partition_cache.get(topic)
        if count is None:
            count = self._partition_cache[topic] = self._partition_counts(topic)
        return count

    def flush(self, timeout_s: float) -> None:
        """Wait until every sent record is acknowledged; raise StreamsException if any
        failed, FlushTimeout if some are still waiting after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        remaining = self._producer.flush(timeout_s)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(max(0.0, deadline - time.monotonic()))
        if self._timed_out and self._task_timeout_ms is not None:
            timed_out, self._timed_out, self._failures = self._timed_out, 0, []
            raise StreamsException(
                f"{timed_out} records not acknowledged by the broker within task_timeout_ms="
                f"{self._task_timeout_ms}; offsets not committed, so they are processed again "
                "after a restart; check that Kafka is reachable"
            )
        if self._failures:
            failures, self._failures = self._failures, []
            raise StreamsException(
                f"could not produce {len(failures)}+ records ({failures[0]}); offsets not committed"
            )
        if remaining:
            raise FlushTimeout(remaining, timeout_s)
