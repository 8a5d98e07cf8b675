"""The embedded broker's producer, imitating confluent-kafka's `Producer`.

Records are appended to the log at once (there is no batching to do), but
delivery callbacks are queued and run from `poll()`/`flush()` on the caller's
thread, as librdkafka does, so code that relies on that works the same here.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from time import time_ns
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError

from topicflow.brokers.base import Headers
from topicflow.brokers.embedded.config import flag
from topicflow.brokers.embedded.message import (
    EmbeddedMessage,
    FailedMessage,
    as_bytes,
    normalize_headers,
)
from topicflow.brokers.partitioner import cached_partition_for_key

if TYPE_CHECKING:
    from topicflow.brokers.embedded.broker import EmbeddedBroker

__all__ = ["EmbeddedProducer"]

DeliveryCallback = Callable[[Any, Any], None]
HeadersArg = Headers | list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None]


class EmbeddedProducer:
    """Appends records to an `EmbeddedBroker`; see confluent_kafka.Producer."""

    def __init__(self, broker: EmbeddedBroker, config: dict[str, Any]) -> None:
        self._broker = broker
        self._only_errors = flag(config, "delivery.report.only.error", False)
        self._default_callback: DeliveryCallback | None = config.get("on_delivery")
        self._reports: deque[tuple[DeliveryCallback, KafkaError | None, EmbeddedMessage]] = deque()
        # poll() waits on this (it shares the broker's lock) for reports from other threads.
        self._reported = threading.Condition(broker._lock)
        self._pollers = 0
        self._random = random.Random()  # partitions for records without a key

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        callback: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: HeadersArg | None = None,
    ) -> None:
        """Append a record; partition -1 picks one: murmur2 of the key, else round-robin.

        As confluent's: str keys and values are UTF-8 encoded, headers may be a dict.
        """
        if value is not None and type(value) is not bytes:
            value = as_bytes(value, "value")
        if key is not None and type(key) is not bytes:
            key = as_bytes(key, "key")
        if headers is not None:
            headers = normalize_headers(headers)
        if not timestamp:
            timestamp = time_ns() // 1_000_000
        report = on_delivery or callback or self._default_callback
        broker = self._broker
        topics = broker._topics
        error = None
        while True:
            parts = topics.get(topic)
            if parts is None:
                parts = broker._auto_create(topic)
                if parts is None:
                    error = KafkaError(KafkaError.TOPIC_EXCEPTION, f"Illegal topic name {topic!r}")
                    break
            count = len(parts)
            if partition < 0:
                if key is not None:
                    p = cached_partition_for_key(key, count)
                else:
                    # As librdkafka's murmur2_random: keyless records go anywhere.
                    p = self._random.randrange(count)
            elif partition < count:
                p = partition
            else:
                reason = f"Local: Unknown partition: {topic} has {count} partitions"
                error = KafkaError(KafkaError._UNKNOWN_PARTITION, reason)
                break
            with broker._lock:
                # The topic may have been deleted (and re-created) since the lookup.
                if topics.get(topic) is parts:
                    log = parts[p]
                    if key is None and log.config.compact:
                        # Kafka's broker rejects these: compaction keeps a record per key.
                        reason = (
                            "Compacted topic cannot accept message without key "
                            f"in topic partition {topic}-{p}."
                        )
                        error = KafkaError(KafkaError.INVALID_RECORD, reason)
                        partition = p
                        break
                    if report is not None:
                        offset = log.base + len(log.values)
                    log.append(key, value, timestamp, headers)
                    if broker._waiters:
                        broker._wake_locked((topic, p))
                    break
        if report is None:
            return
        if error is not None:
            failed = FailedMessage(error, topic, partition, key, value, timestamp, headers)
            self._queue(report, error, failed)
        elif not self._only_errors:
            message = EmbeddedMessage(topic, p, offset, key, value, timestamp, headers)
            self._queue(report, None, message)

    def poll(self, timeout: float = -1) -> int:
        """Run queued delivery callbacks; wait up to `timeout` s (-1: forever) for one."""
        served = self._serve()
        if served or timeout == 0:
            return served
        with self._reported:
            # Counted before looking at the queue, so produce() cannot miss us.
            self._pollers += 1
            try:
                if not self._reports:
                    self._reported.wait(None if timeout is None or timeout < 0 else timeout)
            finally:
                self._pollers -= 1
        return self._serve()

    def flush(self, timeout: float = -1) -> int:
        """Run every queued delivery callback; returns how many are still queued (0)."""
        self._serve()
        return len(self._reports)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        """Nothing is ever queued or in flight: records are appended at once."""

    def __len__(self) -> int:
        return len(self._reports)

    def _serve(self) -> int:
        reports = self._reports
        served = 0
        while reports:
            try:
                report, error, message = reports.popleft()
            except IndexError:  # another thread took the last one
                break
            report(error, message)
            served += 1
        return served

    def _queue(
        self, report: DeliveryCallback, error: KafkaError | None, message: EmbeddedMessage
    ) -> None:
        self._reports.append((report, error, message))
        if self._pollers:
            with self._reported:
                self._reported.notify_all()
