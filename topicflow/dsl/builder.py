"""StreamsBuilder: where a DSL topology starts."""

from __future__ import annotations

from typing import Any

from topicflow.dsl.kstream import KStream
from topicflow.dsl.options import Consumed, Named
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

    def build(self) -> Topology:
        self.topology.validate()
        return self.topology

    def node_name(self, kind: str, named: Named | str | None) -> str:
        """The given name, or Kafka Streams' generated `KSTREAM-<KIND>-<10-digit index>`."""
        if named is not None:
            return named.name if isinstance(named, Named) else named
        name = f"KSTREAM-{kind}-{self._index:010d}"
        self._index += 1
        return name
