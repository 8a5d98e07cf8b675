"""StreamsBuilder: where a DSL topology starts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, overload

from topicflow.dsl.internal import InternalStreamsBuilder
from topicflow.dsl.options import Consumed, Materialized, Named
from topicflow.state.stores import StoreSpec
from topicflow.topology.topology import Topology

if TYPE_CHECKING:
    from topicflow.dsl.global_ktable import GlobalKTable
    from topicflow.dsl.kstream import KStream
    from topicflow.dsl.ktable import KTable

K = TypeVar("K")
V = TypeVar("V")


class StreamsBuilder:
    """Builds a `Topology` from DSL calls.

    builder = StreamsBuilder()
    builder.stream("textlines").flat_map_values(str.split).to("words")
    topology = builder.build()
    """

    def __init__(self) -> None:
        # As Kafka Streams' StreamsBuilder: a front for the internal builder, which
        # every stream and table made here shares.
        self._internal = InternalStreamsBuilder()
        self.topology: Topology = self._internal.topology

    # A stream's key and value types are its Consumed's serdes' (`Consumed.with_(
    # Serdes.String(), Serdes.Long())` makes a KStream[str, int]); without one, Any.
    @overload
    def stream(self, topics: str | list[str], consumed: None = None) -> KStream[Any, Any]: ...

    @overload
    def stream(self, topics: str | list[str], consumed: Consumed[K, V]) -> KStream[K, V]: ...

    def stream(
        self, topics: str | list[str], consumed: Consumed[Any, Any] | None = None
    ) -> KStream[Any, Any]:
        """A stream of the records of one or more topics."""
        names = [topics] if isinstance(topics, str) else list(topics)
        return self._internal.stream(names, consumed or Consumed())

    def table(
        self,
        topic: str,
        consumed: Consumed[Any, Any] | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        """A table of the latest value per key of a topic (a null value deletes the key).

        Queryable through its store when `materialized` names one.
        """
        return self._internal.table(topic, consumed or Consumed(), materialized)

    def global_table(
        self,
        topic: str,
        consumed: Consumed[Any, Any] | None = None,
        materialized: Materialized | None = None,
    ) -> GlobalKTable:
        """A table of every partition of a topic, held whole by every instance.

        Loaded before any stream record is processed and kept up to date from the
        topic (which is its log: no changelog); joined from a stream with
        `stream.join(global_table, key_selector, joiner)`. A persistent store
        (`Materialized(persistent=True)`) restarts from its checkpoint.
        """
        return self._internal.global_table(topic, consumed or Consumed(), materialized)

    def add_state_store(self, spec: StoreSpec) -> StreamsBuilder:
        """Declare a store for Processor API processors: `stream.process(supplier, spec.name)`."""
        self.topology.add_state_store(spec)
        return self

    def build(self) -> Topology:
        self.topology.validate()
        return self.topology

    def node_name(self, kind: str, named: Named | str | None) -> str:
        """The given name, or Kafka Streams' generated `KSTREAM-<KIND>-<10-digit index>`."""
        return self._internal.node_name(kind, named)
