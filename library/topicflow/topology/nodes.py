"""The nodes of a processor graph, and what a node needs from the task that runs it.

A node definition is static (built once by the DSL or `Topology.add_*`). Each
task instantiates it into a plain function `process(key, value)` that calls
its children's functions directly: one record flows through a chain of Python
calls, with no queue, no per-record context object and no dispatch table.

Record metadata (timestamp, headers, origin) travels beside the key and value
in the task's one mutable `RecordContext`, set once per input record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from topicflow.brokers.base import Headers
from topicflow.serdes import Serde

if TYPE_CHECKING:
    from topicflow.config import StreamsConfig, TimestampExtractor
    from topicflow.processor.api import Cancellable, PunctuationType, Punctuator

# What every instantiated node is: called with one key and value.
Forward = Callable[[Any, Any], None]


class RecordContext:
    """The metadata of the record in flight in a task; one mutable object per task.

    `message` is the consumed message the record derives from (None inside a
    wall-clock punctuator); `timestamp` and `headers` are those of the record
    as it is forwarded, which a processor may change.

    With idempotent state (topicflow/runtime/replay.py), `origin` is the id of
    the input partition `message` comes from, `position` its offset shifted to
    leave room for an ordinal, and `ordinal` counts the records sent so far for
    it: sinks stamp each output with origin and position + ordinal. `origin` is None
    where outputs do not derive from one input record (punctuators, cache flushes).

    `old_value` is the previous value of a table update in flight (the old half of
    Kafka Streams' `Change`), set by the table that sends it for the nodes below
    that asked for old values (a `KTable.filter`); no other node reads it.
    """

    __slots__ = ("headers", "message", "old_value", "ordinal", "origin", "position", "timestamp")

    def __init__(self) -> None:
        self.message: Any = None
        self.timestamp: int = 0
        self.headers: Headers | None = None
        self.old_value: Any = None
        self.origin: bytes | None = None
        self.ordinal = 0
        # With an origin: the message's offset << SEQUENCE_BITS (its outputs' base).
        self.position = 0

    def topic(self) -> str | None:
        return None if self.message is None else self.message.topic()

    def partition(self) -> int | None:
        return None if self.message is None else self.message.partition()

    def offset(self) -> int | None:
        return None if self.message is None else self.message.offset()


class RecordSender(Protocol):
    """Where sink nodes send serialized records: the producer, or the test driver."""

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int,
    ) -> None: ...

    def partition_count(self, topic: str) -> int: ...


class TaskMetrics(Protocol):
    """The counters nodes update (a stream worker's metrics)."""

    dropped_records: int  # null keys or values an aggregation cannot use
    late_records: int  # records for windows already closed
    replayed_updates_skipped: int  # idempotent state: updates a restored aggregate holds


class TaskContext(Protocol):
    """What an instantiated node may use from the task that runs it."""

    @property
    def metrics(self) -> TaskMetrics: ...

    @property
    def application_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def record_context(self) -> RecordContext: ...

    @property
    def sender(self) -> RecordSender: ...

    @property
    def stream_time(self) -> int: ...

    @property
    def config(self) -> StreamsConfig: ...

    def wall_clock_ms(self) -> int: ...

    def schedule(
        self, interval_ms: int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable: ...

    def request_commit(self) -> None: ...

    def get_state_store(self, name: str) -> Any: ...

    @property
    def default_key_serde(self) -> Serde[Any]:
        """The configured default key serde (Kafka's `ProcessorContext.keySerde()`): for
        nodes that serialize keys themselves (a foreign-key join's subscriptions)."""
        ...

    @property
    def default_value_serde(self) -> Serde[Any]: ...

    def on_commit(self, flush: Callable[[], None]) -> None:
        """Call `flush` at every commit, before the producer flush and the offset commit.

        Listeners run upstream first (in the order of the nodes that registered
        them), so what a store's cache forwards reaches a sink before the sink flushes.
        """
        ...

    def on_close(self, close: Callable[[], None]) -> None:
        """Call `close` when the task closes (rebalance or shutdown)."""
        ...


# Instantiates a processor node for one task: given the task and the node's
# children (in order, by name), returns the node's process function.
NodeFactory = Callable[[TaskContext, dict[str, Forward]], Forward]
# Kafka Streams' TopicNameExtractor: (key, value, record context) -> topic name.
TopicNameExtractor = Callable[[Any, Any, RecordContext], str]
# Kafka Streams' StreamPartitioner: (topic, key, value, partition count) -> partition.
StreamPartitioner = Callable[[str, Any, Any, int], int]


@dataclass(eq=False)
class SourceNode:
    name: str
    topics: list[str]
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    timestamp_extractor: TimestampExtractor | None = None
    children: list[str] = field(default_factory=list)


@dataclass(eq=False)
class ProcessorNode:
    name: str
    factory: NodeFactory
    parents: list[str]
    stores: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)


@dataclass(eq=False)
class SinkNode:
    name: str
    parents: list[str]
    topic: str | None = None
    topic_extractor: TopicNameExtractor | None = None
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    partitioner: StreamPartitioner | None = None

    @property
    def children(self) -> list[str]:
        return []


Node = SourceNode | ProcessorNode | SinkNode


def forward_to(children: dict[str, Forward]) -> Forward:
    """One function that calls every child in order (the child itself when there is one)."""
    targets = list(children.values())
    if len(targets) == 1:
        return targets[0]
    if not targets:

        def drop(key: Any, value: Any) -> None:
            return None

        return drop

    def fan_out(key: Any, value: Any) -> None:
        for target in targets:
            target(key, value)

    return fan_out
