"""StreamsBuilder: where a DSL topology starts."""

from __future__ import annotations

from typing import Any

from topicflow.dsl.kstream import KStream
from topicflow.dsl.ktable import KTable
from topicflow.dsl.options import Consumed, Materialized, Named
from topicflow.state.stores import StoreSpec
from topicflow.topology.topology import Topology


class StreamsBuilder:
    """Builds a `Topology` from DSL calls.

    builder = StreamsBuilder()
    builder.stream("textlines").flat_map_values(str.split).to("words")
    topology = builder.build()
    """

    def __init__(self) -> None:
        self.topology = Topology()
        self._index = 0

    def stream(
        self, topics: str | list[str], consumed: Consumed | None = None
    ) -> KStream[Any, Any]:
        """A stream of the records of one or more topics."""
        consumed = consumed or Consumed()
        names = [topics] if isinstance(topics, str) else list(topics)
        name = consumed.name or self.node_name("SOURCE", None)
        self.topology.add_source(
            name,
            *names,
            key_serde=consumed.key_serde,
            value_serde=consumed.value_serde,
            timestamp_extractor=consumed.timestamp_extractor,
        )
        return KStream(self, name)

    def table(
        self,
        topic: str,
        consumed: Consumed | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        """A table of the latest value per key of a topic (a null value deletes the key).

        Queryable through its store when `materialized` names one.
        """
        from topicflow.dsl.changes import OldValues
        from topicflow.dsl.ktable import table_source_node
        from topicflow.state.stores import StoreSpec
        from topicflow.topology.nodes import ProcessorNode

        consumed = consumed or Consumed()
        source = consumed.name or self.node_name("SOURCE", None)
        self.topology.add_source(
            source,
            topic,
            key_serde=consumed.key_serde,
            value_serde=consumed.value_serde,
            timestamp_extractor=consumed.timestamp_extractor,
        )
        name = self.node_name("KTABLE-SOURCE", None)
        store = materialized.store_name if materialized else None
        if materialized is not None and store is None:
            store = self.node_name("STATE-STORE", None)
        # Only a materialized table knows a key's old value, to send it below.
        old_values = OldValues() if store is not None else None
        self.topology.add_node(ProcessorNode(name, table_source_node(store, old_values), [source]))
        if materialized is not None and store is not None:
            spec = StoreSpec(
                store,
                "key_value",
                materialized.key_serde or consumed.key_serde,
                materialized.value_serde or consumed.value_serde,
                persistent=materialized.persistent,
                logging=materialized.logging,
                caching=materialized.caching,
                timestamped=True,
                changelog_config={"cleanup.policy": "compact"},
            )
            self.topology.add_state_store(spec, name)
        return KTable(self, name, store_name=store, old_values=old_values)

    def add_state_store(self, spec: StoreSpec) -> StreamsBuilder:
        """Declare a store for Processor API processors: `stream.process(supplier, spec.name)`."""
        self.topology.add_state_store(spec)
        return self

    def build(self) -> Topology:
        self.topology.validate()
        return self.topology

    def node_name(self, kind: str, named: Named | str | None) -> str:
        """The given name, or Kafka Streams' generated `KSTREAM-<KIND>-<10-digit index>`."""
        if named is not None:
            return named.name if isinstance(named, Named) else named
        prefix = "" if kind.startswith("KTABLE-") else "KSTREAM-"
        name = f"{prefix}{kind}-{self._index:010d}"
        self._index += 1
        return name
