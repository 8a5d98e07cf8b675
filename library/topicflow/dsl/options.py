"""Small value objects that ride along DSL calls, as in Kafka Streams.

builder.stream("textlines", Consumed.with_(Serdes.String(), Serdes.String()))
stream.to("words", Produced.with_(Serdes.String(), Serdes.String()))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topicflow.config import TimestampExtractor
from topicflow.serdes import Serde
from topicflow.topology.nodes import StreamPartitioner


@dataclass(frozen=True, slots=True)
class Consumed:
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    timestamp_extractor: TimestampExtractor | None = None
    name: str | None = None

    @staticmethod
    def with_(key_serde: Serde[Any] | None, value_serde: Serde[Any] | None) -> Consumed:
        return Consumed(key_serde, value_serde)

    @staticmethod
    def as_(name: str) -> Consumed:
        return Consumed(name=name)

    def with_key_serde(self, serde: Serde[Any]) -> Consumed:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> Consumed:
        return dataclasses.replace(self, value_serde=serde)

    def with_timestamp_extractor(self, extractor: TimestampExtractor) -> Consumed:
        return dataclasses.replace(self, timestamp_extractor=extractor)

    def with_name(self, name: str) -> Consumed:
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
