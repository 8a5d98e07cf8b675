"""The Processor API: what a user writes to go below the DSL.

A `Processor` is created once per task (one per input partition), gets its
`ProcessorContext` in `init`, a `Record` per input in `process`, and `close`
when the task goes away (on rebalance or shutdown).

    class Uppercase(Processor[str, str, str, str]):
        def init(self, context):
            self.context = context
        def process(self, record):
            self.context.forward(record.with_value(record.value.upper()))
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Generic, Protocol, TypeVar

from topicflow.brokers.base import Headers

KIn = TypeVar("KIn")
VIn = TypeVar("VIn")
KOut = TypeVar("KOut")
VOut = TypeVar("VOut")
K = TypeVar("K")
V = TypeVar("V")


class Record(Generic[K, V]):
    """One record: key, value, timestamp (epoch ms) and headers, plus where it was read.

    `topic`, `partition` and `offset` name the input record this one derives
    from (None for records created by a punctuator). Records are values:
    `with_key`, `with_value`, `with_timestamp` and `with_headers` return copies.
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        key: K,
        value: V,
        timestamp: int,
        headers: Headers | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.timestamp = timestamp
        self.headers = headers
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def with_key(self, key: KOut) -> Record[KOut, V]:
        return Record(
            key, self.value, self.timestamp, self.headers, self.topic, self.partition, self.offset
        )

    def with_value(self, value: VOut) -> Record[K, VOut]:
        return Record(
            self.key, value, self.timestamp, self.headers, self.topic, self.partition, self.offset
        )

    def with_timestamp(self, timestamp: int) -> Record[K, V]:
        return Record(
            self.key, self.value, timestamp, self.headers, self.topic, self.partition, self.offset
        )

    def with_headers(self, headers: Headers | None) -> Record[K, V]:
        return Record(
            self.key, self.value, self.timestamp, headers, self.topic, self.partition, self.offset
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.key, self.value, self.timestamp, self.headers) == (
            other.key,
            other.value,
            other.timestamp,
            other.headers,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.value, self.timestamp))

    def __repr__(self) -> str:
        return f"Record(key={self.key!r}, value={self.value!r}, timestamp={self.timestamp})"


class PunctuationType(enum.Enum):
    """What drives a punctuator: the task's stream time or the wall clock."""

    STREAM_TIME = "stream_time"
    WALL_CLOCK_TIME = "wall_clock_time"


STREAM_TIME = PunctuationType.STREAM_TIME
WALL_CLOCK_TIME = PunctuationType.WALL_CLOCK_TIME

# A punctuator receives the time (stream or wall clock, epoch ms) it fires at.
Punctuator = Callable[[int], None]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class RecordMetadata(Protocol):
    """Where the record being processed was read from."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


class ProcessorContext(Protocol[KOut, VOut]):
    """What a processor can do besides receiving records."""

    @property
    def application_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    def forward(self, record: Record[KOut, VOut], child_name: str | None = None) -> None:
        """Send a record to the children of this processor (or only to the named one)."""
        ...

    def schedule(
        self, interval: timedelta | int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable:
        """Call `callback(timestamp)` every `interval` (ms or timedelta) of stream or wall time."""
        ...

    def record_metadata(self) -> RecordMetadata | None: ...

    def current_stream_time_ms(self) -> int: ...

    def current_system_time_ms(self) -> int: ...

    def commit(self) -> None:
        """Ask for a commit at the end of the current batch."""
        ...

    def get_state_store(self, name: str) -> Any: ...


class Processor(Generic[KIn, VIn, KOut, VOut]):
    """Base class of user processors. Override `process`; `init` and `close` are optional."""

    def init(self, context: ProcessorContext[KOut, VOut]) -> None:
        self.context = context

    def process(self, record: Record[KIn, VIn]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Called at every commit, before the producer is flushed and offsets are committed.

        A processor that writes to an external system in batches writes them
        here: once it returns, the input records behind them may be committed.
        Raise `topicflow.errors.RetriableError` when the system is unavailable:
        the commit is skipped, input is paused, and `flush` is called again
        after a backoff.
        """
        return None

    def close(self) -> None:
        return None


# Kafka Streams' ProcessorSupplier: a fresh processor per task. A Processor
# subclass itself is a valid supplier.
ProcessorSupplier = Callable[[], Processor[Any, Any, Any, Any]]
