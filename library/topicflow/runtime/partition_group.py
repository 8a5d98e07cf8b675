"""PartitionGroup: a task that reads several partitions takes their records in
timestamp order (Kafka Streams' PartitionGroup and RecordQueue, KIP-695).

A join's task reads partition N of both its topics; a merge's, of each topic
merged. The consumer hands their records over in whatever order it fetched
them, so a task that processed them as they came would join a click with the
table as it stood whenever the table's partition happened to be fetched. Such
a task queues each partition's records (its routes' screen, see
runtime/source_route.py) and processes next the head record with the smallest
timestamp among its queues, as Kafka Streams does.

A queue may be empty while the others hold records. How long the task waits
for it is `max_task_idle_ms` (KIP-695):

    -1  never: process what is there
     0  only while the consumer knows that partition has records on the broker
        it has not fetched yet (its lag: the high watermark less its position)
     N  as for 0, then up to N ms more (wall-clock) for new records to arrive,
        counted from when the task had records to process and found it empty

Processing while a queue is empty is "enforced processing", counted in the
`enforced_processing` metric: its records may come out of timestamp order.

A queue holds at most `buffered_records_per_partition` records before its
partition is paused (the consumer would fetch on meanwhile); it is resumed
once drained below that. Queued records are not processed, so their offsets
are not committed (the commit takes each route's last processed record); a
task that is revoked or closed drops its queues, and whoever runs it next
reads those records again from the committed offsets.

Tasks that read one partition, most of them, have no group: their records go
straight through (the per-record path tests `route.screen`, None for them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from topicflow.brokers.base import OFFSET_INVALID, Consumer, Headers
from topicflow.runtime.source_route import HELD, Screen, SourceRoute

__all__ = ["ConsumerLag", "PartitionGroup"]

# max_task_idle_ms: never wait for an empty partition.
NEVER_WAIT = -1

# (topic, partition, position known to the task or None) -> records on the broker
# not fetched yet, or None when the consumer does not know.
LagProvider = Callable[[str, int, int | None], int | None]


class RecordQueue:
    """One partition's records waiting in its task's group."""

    __slots__ = ("deadline", "fetched", "head_time", "paused", "records", "route", "screen")

    def __init__(self, route: SourceRoute) -> None:
        self.route = route
        self.records: deque[Any] = deque()
        # The head record's timestamp, computed when it becomes the head.
        self.head_time: int | None = None
        # The offset after the last record queued; None: none yet.
        self.fetched: int | None = None
        # max_task_idle_ms: when the task stops waiting for this empty queue.
        self.deadline: float | None = None
        self.paused = False
        # What screens the records released (idempotent state: the task's filter
        # of replays), as it would without the group.
        origins = route.task.origins
        self.screen: Screen | None = origins.screen if origins is not None else None


class PartitionGroup:
    """The queues of one task's input partitions, drained in timestamp order."""

    def __init__(
        self,
        routes: list[SourceRoute],
        max_task_idle_ms: int,
        max_buffered: int,
        lag: LagProvider,
        metrics: Any,
    ) -> None:
        self._queues = [RecordQueue(route) for route in routes]
        self._max_idle = max_task_idle_ms
        self._max_buffered = max_buffered
        self._lag = lag
        self._metrics = metrics
        self.buffered = 0
        # Set while its released records are processed: the screens let them through.
        self.releasing = False
        # Partitions whose queue grew past the bound, and those drained below it
        # since: for the worker to pause and resume.
        self.to_pause: list[TopicPartition] = []
        self.to_resume: list[TopicPartition] = []
        for queue in self._queues:
            queue.route.screen = self._screen(queue)

    def reads(self, routes: list[SourceRoute]) -> bool:
        """Whether the group queues exactly these routes' records."""
        return len(routes) == len(self._queues) and all(
            q.route is r for q, r in zip(self._queues, routes, strict=True)
        )

    def is_paused(self, topic: str, partition: int) -> bool:
        """Whether the group paused this partition (its queue is full)."""
        return any(
            q.paused and q.route.topic == topic and q.route.partition == partition
            for q in self._queues
        )

    def _screen(self, queue: RecordQueue) -> Screen:
        records = queue.records
        bound = self._max_buffered

        def screen(message: Any, headers: Headers | None) -> Any:
            if self.releasing:
                inner = queue.screen
                return headers if inner is None else inner(message, headers)
            if not self.buffered:
                # The task had nothing to wait with: idle time counts from now.
                for other in self._queues:
                    other.deadline = None
            records.append(message)
            self.buffered += 1
            queue.fetched = message.offset() + 1
            # Not empty: when it is again, the wait for it starts over.
            queue.deadline = None
            if len(records) > bound and not queue.paused:
                queue.paused = True
                self.to_pause.append(TopicPartition(queue.route.topic, queue.route.partition))
            return HELD

        return screen

    def release(self, now_ms: float) -> list[Any]:
        """The queued records to process now, in the order to process them.

        Each is the head with the smallest timestamp among the queues (on a tie,
        the queue of the task's first partition; Kafka's priority queue leaves ties
        in no set order), taken while the task is ready: every queue holds a
        record, or the empty ones need not be waited for.
        """
        released: list[Any] = []
        if not self.buffered:
            return released
        queues = self._queues
        lags: dict[int, int | None] = {}
        while self.buffered:
            # One pass: the earliest head, and whether a queue is empty.
            first: RecordQueue | None = None
            first_time = 0
            empty = False
            for queue in queues:
                records = queue.records
                if records:
                    head_time = queue.head_time
                    if head_time is None:
                        route = queue.route
                        head_time = queue.head_time = (
                            records[0].timestamp()[1]
                            if route.extractor is None
                            else _timestamp(route, records[0])
                        )
                    if first is None or head_time < first_time:
                        first, first_time = queue, head_time
                else:
                    empty = True
            if empty and not self._ready(now_ms, lags):
                break
            assert first is not None
            released.append(first.records.popleft())
            first.head_time = None
            self.buffered -= 1
            if first.paused and len(first.records) <= self._max_buffered:
                first.paused = False
                self.to_resume.append(TopicPartition(first.route.topic, first.route.partition))
        return released

    def _ready(self, now_ms: float, lags: dict[int, int | None]) -> bool:
        """KIP-695's readyToProcess; `lags` caches the consumer's answers for one release."""
        if self._max_idle == NEVER_WAIT:
            return True
        enforced = False
        for index, queue in enumerate(self._queues):
            if queue.records:
                queue.deadline = None
                continue
            if index not in lags:
                route = queue.route
                lags[index] = self._lag(route.topic, route.partition, queue.fetched)
            lag = lags[index]
            if lag is None or lag > 0:
                # Unknown, or records are on the broker: wait for the consumer.
                queue.deadline = None
                return False
            if queue.deadline is None:
                queue.deadline = now_ms + self._max_idle
            if now_ms < queue.deadline:
                return False
            enforced = True
        if enforced:
            self._metrics.enforced_processing += 1
        return True


def _timestamp(route: SourceRoute, message: Any) -> int:
    """The timestamp a route's extractor gives a record, to order it
    (runtime/processing.py computes it again when it processes it). A record that
    cannot be decoded for the extractor goes first: processing skips it at once,
    as Kafka Streams drops it when it reaches the head of its queue."""
    timestamp: int = message.timestamp()[1]
    extractor = route.extractor
    assert extractor is not None
    try:
        key = message.key()
        if key is not None and route.decode_key is not None:
            key = route.decode_key(key)
        value = message.value()
        if value is not None and route.decode_value is not None:
            value = route.decode_value(value)
        return extractor(timestamp, key, value, route.task.stream_time)
    except Exception:
        return -1


class ConsumerLag:
    """How many records of a partition the broker holds that the consumer has not
    fetched, as far as the consumer knows (Kafka's Consumer.currentLag): the high
    watermark it last saw less its position. None: not known yet.

    librdkafka knows a position only once it has returned a record of the
    partition; until then it is the offset the task started from (the group's
    committed offset, else where auto_offset_reset puts it), asked once.
    """

    def __init__(self, consumer: Consumer, auto_offset_reset: str) -> None:
        self._consumer = consumer
        self._earliest = auto_offset_reset == "earliest"
        self._start: dict[tuple[str, int], int] = {}

    def __call__(self, topic: str, partition: int, fetched: int | None) -> int | None:
        tp = TopicPartition(topic, partition)
        consumer = self._consumer
        try:
            low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                return None
            position: int = consumer.position([tp])[0].offset
            if position < 0:
                position = fetched if fetched is not None else self._start_offset(tp, low, high)
        except KafkaException:
            # The partition went with a rebalance, or the broker is away: not known
            # now; the task waits, and asks again next turn.
            return None
        if position < 0:
            return None
        return max(0, high - position)

    def _start_offset(self, tp: TopicPartition, low: int, high: int) -> int:
        key = (tp.topic, tp.partition)
        start = self._start.get(key)
        if start is None:
            committed = self._consumer.committed([tp], 30)[0].offset
            if committed >= 0:
                start = committed
            elif low < 0:
                return OFFSET_INVALID
            else:
                start = low if self._earliest else high
            self._start[key] = start
        return start

    def forget(self) -> None:
        """After a rebalance: tasks start again from the committed offsets."""
        self._start.clear()
