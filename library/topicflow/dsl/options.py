"""Small value objects that ride along DSL calls, as in Kafka Streams.

builder.stream("textlines", Consumed.with_(Serdes.String(), Serdes.String()))
stream.to("words", Produced.with_(Serdes.String(), Serdes.String()))
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic

from topicflow.config import TimestampExtractor
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
class Produced:
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    partitioner: StreamPartitioner | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[Any] | None, value_serde: Serde[Any] | None) -> Produced:
        return Produced(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Produced:
        return Produced(name=name)

    def with_key_serde(self, serde: Serde[Any]) -> Produced:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Produced:
        return dataclasses.replace(self, value_serde=serde)

    def with_stream_partitioner(self, partitioner: StreamPartitioner) -> Produced:
        return dataclasses.replace(self, partitioner=partitioner)

    def with_name(self, name: str) -> Produced:
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
class Grouped:
    """Serdes and name of a grouping; the name also names its repartition topic."""

    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[Any] | None, value_serde: Serde[Any] | None) -> Grouped:
        return Grouped(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Grouped:
        return Grouped(name=name)

    def with_key_serde(self, serde: Serde[Any]) -> Grouped:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Grouped:
        return dataclasses.replace(self, value_serde=serde)

    def with_name(self, name: str) -> Grouped:
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
class Materialized:
    """How an aggregation's store is named and built.

    The store name also names its changelog `{application_id}-{name}-changelog`
    and, when the aggregation needs one, the repartition topic before it.
    """

    store_name: str | None = None
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    persistent: bool = False
    logging: bool = True
    caching: bool = True
    retention_ms: int | None = None

    @staticmethod
    def as_(store_name: str) -> Materialized:
        return Materialized(store_name)

    @staticmethod
    def with_(key_serde: Serde[Any] | None, value_serde: Serde[Any] | None) -> Materialized:
        return Materialized(None, key_serde, value_serde)

    def with_key_serde(self, serde: Serde[Any]) -> Materialized:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Materialized:
        return dataclasses.replace(self, value_serde=serde)

    def with_retention(self, retention: Any) -> Materialized:
        from topicflow.dsl.windows import to_ms

        return dataclasses.replace(self, retention_ms=to_ms(retention))

    def with_logging_disabled(self) -> Materialized:
        return dataclasses.replace(self, logging=False)

    def with_caching_disabled(self) -> Materialized:
        return dataclasses.replace(self, caching=False)

    def with_caching_enabled(self) -> Materialized:
        return dataclasses.replace(self, caching=True)

    def persistent_store(self) -> Materialized:
        """Keep the store in RocksDB under `state_dir` instead of memory."""
        return dataclasses.replace(self, persistent=True)

    def in_memory_store(self) -> Materialized:
        return dataclasses.replace(self, persistent=False)


@dataclass(frozen=True, slots=True)
class Suppressed:
    """What `KTable.suppress` holds back. Only `until_window_closes` is supported:
    one final result per window, once stream time passes the window end plus grace."""

    name: str | None = None

    @staticmethod
    def until_window_closes(name: str | None = None) -> Suppressed:
        return Suppressed(name)

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
