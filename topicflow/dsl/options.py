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
