"""Small value objects that ride along DSL calls, as in Kafka Streams.

builder.stream("textlines", Consumed.with_(Serdes.String(), Serdes.String()))
stream.to("words", Produced.with_(Serdes.String(), Serdes.String()))
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic

from topicflow.config import TimestampExtractor
from topicflow.dsl.windows import to_ms
from topicflow.serdes import Serde
from topicflow.topology.nodes import StreamPartitioner

if TYPE_CHECKING:
    # PEP 696 defaults: a serde not given, as in `Consumed()` or `Consumed.with_(None,
    # serde)`, types its side as Any rather than Never. mypy reads typing_extensions
    # from its own stubs, so nothing is imported at run time.
    from typing_extensions import TypeVar

    K = TypeVar("K", default=Any)
    V = TypeVar("V", default=Any)
    # The key and value types a call gives a Consumed.
    KS = TypeVar("KS", default=Any)
    VS = TypeVar("VS", default=Any)
else:
    # At run time a default changes nothing (and typing takes one from Python 3.13 only).
    K, V, KS, VS = (typing.TypeVar(name) for name in ("K", "V", "KS", "VS"))


@dataclass(frozen=True, slots=True)
class Consumed(Generic[K, V]):
    """How a source reads its topic; `Consumed[K, V]` for serdes of `K` keys and `V` values.

    `builder.stream(topic, Consumed.with_(Serdes.String(), Serdes.Long()))` is then a
    `KStream[str, int]`; a serde left out is `Any`.
    """

    key_serde: Serde[K] | None = None
    value_serde: Serde[V] | None = None
    timestamp_extractor: TimestampExtractor | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[KS] | None, value_serde: Serde[VS] | None) -> Consumed[KS, VS]:
        return Consumed(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Consumed[Any, Any]:
        return Consumed(name=name)

    def with_key_serde(self, serde: Serde[KS]) -> Consumed[KS, V]:
        return Consumed(serde, self.value_serde, self.timestamp_extractor, self.name)

    def with_value_serde(self, serde: Serde[VS]) -> Consumed[K, VS]:
        return Consumed(self.key_serde, serde, self.timestamp_extractor, self.name)

    def with_timestamp_extractor(self, extractor: TimestampExtractor) -> Consumed[K, V]:
        return dataclasses.replace(self, timestamp_extractor=extractor)

    def with_name(self, name: str) -> Consumed[K, V]:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class Produced(Generic[K, V]):
    """How a sink writes its topic; `Produced[K, V]` for serdes of `K` keys and `V` values."""

    key_serde: Serde[K] | None = None
    value_serde: Serde[V] | None = None
    partitioner: StreamPartitioner | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[KS] | None, value_serde: Serde[VS] | None) -> Produced[KS, VS]:
        return Produced(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Produced[Any, Any]:
        return Produced(name=name)

    def with_key_serde(self, serde: Serde[KS]) -> Produced[KS, V]:
        return Produced(serde, self.value_serde, self.partitioner, self.name)

    def with_value_serde(self, serde: Serde[VS]) -> Produced[K, VS]:
        return Produced(self.key_serde, serde, self.partitioner, self.name)

    def with_stream_partitioner(self, partitioner: StreamPartitioner) -> Produced[K, V]:
        return dataclasses.replace(self, partitioner=partitioner)

    def with_name(self, name: str) -> Produced[K, V]:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class Repartitioned:
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    name: str | None = None
    number_of_partitions: int | None = None
    partitioner: StreamPartitioner | None = None

    @staticmethod
    def with_(key_serde: Serde[Any] | None, value_serde: Serde[Any] | None) -> Repartitioned:
        return Repartitioned(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Repartitioned:
        return Repartitioned(name=name)

    def with_number_of_partitions(self, partitions: int) -> Repartitioned:
        return dataclasses.replace(self, number_of_partitions=partitions)

    def with_key_serde(self, serde: Serde[Any]) -> Repartitioned:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Repartitioned:
        return dataclasses.replace(self, value_serde=serde)

    def with_stream_partitioner(self, partitioner: StreamPartitioner) -> Repartitioned:
        return dataclasses.replace(self, partitioner=partitioner)

    def with_name(self, name: str) -> Repartitioned:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class Named:
    name: str

    @staticmethod
    def as_(name: str) -> Named:
        return Named(name)


@dataclass(frozen=True, slots=True)
class Branched:
    """How one branch of `split()` is named and what is done with it.

    `chain` receives the branch's KStream and may return a transformed one (or
    None, having consumed it), like Kafka Streams' `Branched.withFunction`.
    """

    name: str | None = None
    chain: Callable[[Any], Any] | None = None

    @staticmethod
    def as_(name: str) -> Branched:
        return Branched(name=name)

    @staticmethod
    def with_function(chain: Callable[[Any], Any], name: str | None = None) -> Branched:
        return Branched(name=name, chain=chain)

    @staticmethod
    def with_consumer(consumer: Callable[[Any], None], name: str | None = None) -> Branched:
        def chain(stream: Any) -> None:
            consumer(stream)

        return Branched(name=name, chain=chain)


@dataclass(frozen=True, slots=True)
class Grouped(Generic[K, V]):
    """Serdes and name of a grouping; the name also names its repartition topic.
    `Grouped[K, V]` for serdes of `K` keys and `V` values."""

    key_serde: Serde[K] | None = None
    value_serde: Serde[V] | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[KS] | None, value_serde: Serde[VS] | None) -> Grouped[KS, VS]:
        return Grouped(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Grouped[Any, Any]:
        return Grouped(name=name)

    def with_key_serde(self, serde: Serde[KS]) -> Grouped[KS, V]:
        return Grouped(serde, self.value_serde, self.name)

    def with_value_serde(self, serde: Serde[VS]) -> Grouped[K, VS]:
        return Grouped(self.key_serde, serde, self.name)

    def with_name(self, name: str) -> Grouped[K, V]:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class Joined:
    """Serdes and name of a stream-table join (Kafka Streams' `Joined`).

    The serdes are those of the stream's key and value, used when the stream
    goes through a repartition topic first (its key changed upstream), and of
    the table's value; the name names the join node and that topic.
    """

    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    other_value_serde: Serde[Any] | None = None
    name: str | None = None

    @staticmethod
    def with_(
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        other_value_serde: Serde[Any] | None = None,
    ) -> Joined:
        return Joined(key_serde, value_serde, other_value_serde)

    @staticmethod
    def as_(name: str) -> Joined:
        return Joined(name=name)

    def with_name(self, name: str) -> Joined:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class Materialized(Generic[K, V]):
    """How an aggregation's store is named and built; `Materialized[K, V]` for serdes
    of `K` keys and `V` values.

    The store name also names its changelog `{application_id}-{name}-changelog`
    and, when the aggregation needs one, the repartition topic before it.
    """

    store_name: str | None = None
    key_serde: Serde[K] | None = None
    value_serde: Serde[V] | None = None
    persistent: bool = False
    logging: bool = True
    caching: bool = True
    retention_ms: int | None = None

    @staticmethod
    def as_(store_name: str) -> Materialized[Any, Any]:
        return Materialized(store_name)

    @staticmethod
    def with_(key_serde: Serde[KS] | None, value_serde: Serde[VS] | None) -> Materialized[KS, VS]:
        return Materialized(None, key_serde, value_serde)

    def with_key_serde(self, serde: Serde[KS]) -> Materialized[KS, V]:
        return Materialized(
            self.store_name,
            serde,
            self.value_serde,
            self.persistent,
            self.logging,
            self.caching,
            self.retention_ms,
        )

    def with_value_serde(self, serde: Serde[VS]) -> Materialized[K, VS]:
        return Materialized(
            self.store_name,
            self.key_serde,
            serde,
            self.persistent,
            self.logging,
            self.caching,
            self.retention_ms,
        )

    def with_retention(self, retention: Any) -> Materialized[K, V]:
        from topicflow.dsl.windows import to_ms

        return dataclasses.replace(self, retention_ms=to_ms(retention))

    def with_logging_disabled(self) -> Materialized[K, V]:
        return dataclasses.replace(self, logging=False)

    def with_caching_disabled(self) -> Materialized[K, V]:
        return dataclasses.replace(self, caching=False)

    def with_caching_enabled(self) -> Materialized[K, V]:
        return dataclasses.replace(self, caching=True)

    def persistent_store(self) -> Materialized[K, V]:
        """Keep the store in RocksDB under `state_dir` instead of memory."""
        return dataclasses.replace(self, persistent=True)

    def in_memory_store(self) -> Materialized[K, V]:
        return dataclasses.replace(self, persistent=False)


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """How much a time-limit `Suppressed` may hold, and what happens when it is full
    (Kafka Streams' Suppressed.BufferConfig).

    `unbounded()` never fills. `max_records(n)` and `max_bytes(n)` emit the oldest
    updates early when full, as Kafka's; `shut_down_when_full()` stops the task
    with an error instead. `max_bytes` counts as Kafka Streams' in-memory buffer
    does: per key, its serialized key, values and record metadata."""

    record_limit: int | None = None
    byte_limit: int | None = None
    emit_when_full: bool = False

    @staticmethod
    def unbounded() -> BufferConfig:
        return BufferConfig()

    @staticmethod
    def max_records(limit: int) -> BufferConfig:
        return BufferConfig(record_limit=limit, emit_when_full=True)

    @staticmethod
    def max_bytes(limit: int) -> BufferConfig:
        return BufferConfig(byte_limit=limit, emit_when_full=True)

    def with_max_records(self, limit: int) -> BufferConfig:
        return dataclasses.replace(self, record_limit=limit)

    def with_max_bytes(self, limit: int) -> BufferConfig:
        return dataclasses.replace(self, byte_limit=limit)

    def with_no_bound(self) -> BufferConfig:
        return BufferConfig()

    def emit_early_when_full(self) -> BufferConfig:
        return dataclasses.replace(self, emit_when_full=True)

    def shut_down_when_full(self) -> BufferConfig:
        return dataclasses.replace(self, emit_when_full=False)


@dataclass(frozen=True, slots=True)
class Suppressed:
    """What `KTable.suppress` holds back.

    `until_window_closes()`: one final result per window, once stream time passes
    the window end plus grace (on a windowed aggregation's table).
    `until_time_limit(time_to_wait, buffer_config)`: on any table, each key's
    latest update, once stream time reaches its first held update's time plus
    `time_to_wait`."""

    name: str | None = None
    # until_time_limit's wait in ms; None for until_window_closes.
    time_to_wait_ms: int | None = None
    buffer_config: BufferConfig = BufferConfig()

    @staticmethod
    def until_window_closes(name: str | None = None) -> Suppressed:
        return Suppressed(name)

    @staticmethod
    def until_time_limit(
        time_to_wait: timedelta | int, buffer_config: BufferConfig | None = None
    ) -> Suppressed:
        """`time_to_wait`: a timedelta or ms; `buffer_config`: unbounded unless given."""
        return Suppressed(None, to_ms(time_to_wait), buffer_config or BufferConfig())

    def with_name(self, name: str) -> Suppressed:
        return dataclasses.replace(self, name=name)


@dataclass(frozen=True, slots=True)
class TableJoined:
    """How a foreign-key join is named and how its subscriptions are partitioned
    (Kafka Streams' TableJoined).

    `other_partitioner(topic, foreign_key, None, partitions)` places each subscription
    in the partition of the foreign table's topic that holds its foreign key: give it
    when that topic was written with a partitioner of its own (the default hashes
    the key). The responses go back to their row's own partition, whatever the left
    topic's partitioner, so Kafka's `partitioner` is not needed.
    """

    name: str | None = None
    other_partitioner: StreamPartitioner | None = None

    @staticmethod
    def as_(name: str) -> TableJoined:
        return TableJoined(name)

    @staticmethod
    def with_(other_partitioner: StreamPartitioner | None) -> TableJoined:
        return TableJoined(None, other_partitioner)

    def with_name(self, name: str) -> TableJoined:
        return dataclasses.replace(self, name=name)

    def with_other_partitioner(self, other_partitioner: StreamPartitioner) -> TableJoined:
        return dataclasses.replace(self, other_partitioner=other_partitioner)
