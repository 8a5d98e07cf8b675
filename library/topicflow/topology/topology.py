"""Topology: the processor graph, its sub-topologies, and `describe()`.

Built by the DSL (`StreamsBuilder.build()`) or by hand through the Processor
API (`add_source`, `add_processor`, `add_sink`), as in Kafka Streams.

A sub-topology is a connected part of the graph. Repartition topics cut the
graph: the sink writing one and the source reading it are in different
sub-topologies, so each runs as its own tasks, one per partition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from topicflow.errors import TopologyError
from topicflow.processor.api import ProcessorSupplier, Record
from topicflow.serdes import Serde
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import (
    Forward,
    Node,
    NodeFactory,
    ProcessorNode,
    SinkNode,
    SourceNode,
    StreamPartitioner,
    TaskContext,
    TopicNameExtractor,
)


@dataclass(frozen=True)
class InternalTopic:
    """A topic the application owns: created at start, named `{application_id}-{name}`."""

    name: str  # without the application id
    kind: str  # "repartition" or "changelog"
    partitions: int | None = None  # None: as many as the upstream source topics
    config: dict[str, str] = field(default_factory=dict)
    # A foreign-key join's topics: as many partitions as the other source topics of
    # the sub-topology that reads them, the tables they meet (Kafka Streams'
    # copartitionSources), not as the one that writes them.
    co_partitioned: bool = False

    def full_name(self, application_id: str) -> str:
        return f"{application_id}-{self.name}"


@dataclass(frozen=True)
class SubTopology:
    id: int
    nodes: list[Node]
    source_topics: list[str]  # may contain internal names, see Topology.resolve
    sink_topics: list[str]

    def store_names(self) -> list[str]:
        """The state stores its processors use, each once, in node order."""
        used = [store for n in self.nodes if isinstance(n, ProcessorNode) for store in n.stores]
        return list(dict.fromkeys(used))

    def describe(self) -> str:
        lines = [f"Sub-topology: {self.id}"]
        for node in self.nodes:
            if isinstance(node, SourceNode):
                lines.append(f"    Source: {node.name} (topics: [{', '.join(node.topics)}])")
            elif isinstance(node, ProcessorNode):
                lines.append(f"    Processor: {node.name} (stores: [{', '.join(node.stores)}])")
            else:
                target = node.topic if node.topic is not None else "<topic extractor>"
                lines.append(f"    Sink: {node.name} (topic: {target})")
            if not isinstance(node, SinkNode):
                lines.append(f"      --> {', '.join(node.children) or 'none'}")
            if not isinstance(node, SourceNode):
                lines.append(f"      <-- {', '.join(node.parents)}")
        return "\n".join(lines) + "\n"


class TopologyDescription:
    def __init__(self, subtopologies: list[SubTopology]) -> None:
        self.subtopologies = subtopologies

    def __str__(self) -> str:
        # Kafka Streams' exact layout: the first sub-topology indented by three
        # spaces, the next ones by two after a blank line, a blank line after each.
        return "Topologies:\n " + "".join(f"  {s.describe()}\n" for s in self.subtopologies)


class Topology:
    """A graph of sources, processors and sinks."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._internal_topics: dict[str, InternalTopic] = {}
        self._stores: dict[str, StoreSpec] = {}

    # -- Processor API -----------------------------------------------------------------

    def add_source(
        self,
        name: str,
        *topics: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        timestamp_extractor: Any = None,
    ) -> Topology:
        if not topics:
            raise TopologyError(f"source {name!r} needs at least one topic")
        for topic in topics:
            for node in self._nodes.values():
                if isinstance(node, SourceNode) and topic in node.topics:
                    raise TopologyError(
                        f"topic {topic!r} is already read by source {node.name!r}; "
                        "read it once and share the stream"
                    )
        self._add(SourceNode(name, list(topics), key_serde, value_serde, timestamp_extractor))
        return self

    def add_processor(
        self, name: str, supplier: ProcessorSupplier, *parent_names: str, stores: Iterable[str] = ()
    ) -> Topology:
        """Add a user processor; `supplier()` is called once per task."""
        factory = user_processor_factory(name, supplier)
        return self.add_node(ProcessorNode(name, factory, list(parent_names), list(stores)))

    def add_sink(
        self,
        name: str,
        topic: str | TopicNameExtractor,
        *parent_names: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
        partitioner: StreamPartitioner | None = None,
    ) -> Topology:
        if isinstance(topic, str):
            node = SinkNode(
                name, list(parent_names), topic, None, key_serde, value_serde, partitioner
            )
        else:
            node = SinkNode(
                name, list(parent_names), None, topic, key_serde, value_serde, partitioner
            )
        return self.add_node(node)

    # -- used by the DSL ---------------------------------------------------------------

    def add_node(self, node: ProcessorNode | SinkNode) -> Topology:
        if not node.parents:
            raise TopologyError(f"{node.name!r} needs at least one parent")
        for parent in node.parents:
            if parent not in self._nodes:
                raise TopologyError(f"{node.name!r} names unknown parent {parent!r}")
            if isinstance(self._nodes[parent], SinkNode):
                raise TopologyError(f"sink {parent!r} cannot have children")
        self._add(node)
        for parent in node.parents:
            self._nodes[parent].children.append(node.name)
        return self

    def add_state_store(self, spec: StoreSpec, *processor_names: str) -> Topology:
        """Declare a store, connected to the named processors (Kafka's addStateStore)."""
        if spec.name in self._stores:
            raise TopologyError(f"a state store named {spec.name!r} exists already")
        self._stores[spec.name] = spec
        if spec.logging:
            self.add_internal_topic(
                InternalTopic(
                    f"{spec.name}-changelog", "changelog", None, dict(spec.changelog_config)
                )
            )
        self.connect_processor_and_state_stores(*processor_names, stores=[spec.name])
        return self

    def connect_processor_and_state_stores(self, *processor_names: str, stores: list[str]) -> None:
        for name in processor_names:
            node = self._nodes.get(name)
            if not isinstance(node, ProcessorNode):
                raise TopologyError(f"cannot connect stores to {name!r}: not a processor")
            for store in stores:
                if store not in self._stores:
                    raise TopologyError(f"unknown state store {store!r}; add it first")
                if store not in node.stores:
                    node.stores.append(store)

    @property
    def state_stores(self) -> dict[str, StoreSpec]:
        return self._stores

    def add_internal_topic(self, topic: InternalTopic) -> None:
        self._internal_topics[topic.name] = topic

    def _add(self, node: Node) -> None:
        if node.name in self._nodes:
            raise TopologyError(f"a node named {node.name!r} exists already; names must be unique")
        self._nodes[node.name] = node

    # -- reading -----------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, Node]:
        return self._nodes

    @property
    def internal_topics(self) -> dict[str, InternalTopic]:
        return self._internal_topics

    def subtopologies(self) -> list[SubTopology]:
        """Connected components, numbered by their first node, as Kafka Streams does.

        Nodes that share a state store are one component too (a join and the
        table whose store it reads): one task must own the store.
        """
        component: dict[str, int] = {}
        order: list[str] = list(self._nodes)
        users: dict[str, list[str]] = {}
        for node in self._nodes.values():
            if isinstance(node, ProcessorNode):
                for store in node.stores:
                    users.setdefault(store, []).append(node.name)
        next_id = 0
        for start in order:
            if start in component:
                continue
            stack = [start]
            component[start] = next_id
            while stack:
                name = stack.pop()
                node = self._nodes[name]
                neighbours = list(node.children)
                if not isinstance(node, SourceNode):
                    neighbours.extend(node.parents)
                if isinstance(node, ProcessorNode):
                    for store in node.stores:
                        neighbours.extend(users[store])
                for other in neighbours:
                    if other not in component:
                        component[other] = next_id
                        stack.append(other)
            next_id += 1
        result = []
        for sub_id in range(next_id):
            nodes = _describe_order([self._nodes[n] for n in order if component[n] == sub_id])
            sources = [t for n in nodes if isinstance(n, SourceNode) for t in n.topics]
            sinks = [n.topic for n in nodes if isinstance(n, SinkNode) and n.topic is not None]
            result.append(SubTopology(sub_id, nodes, sources, sinks))
        return result

    def source_topics(self) -> list[str]:
        return [t for n in self._nodes.values() if isinstance(n, SourceNode) for t in n.topics]

    def describe(self) -> TopologyDescription:
        self.validate()
        return TopologyDescription(self.subtopologies())

    def validate(self) -> None:
        if not any(isinstance(n, SourceNode) for n in self._nodes.values()):
            raise TopologyError("the topology has no source: call builder.stream(topic) first")
        for node in self._nodes.values():
            if isinstance(node, ProcessorNode):
                for store in node.stores:
                    if store not in self._stores:
                        raise TopologyError(
                            f"processor {node.name!r} uses state store {store!r}, which was "
                            "never added (builder.add_state_store)"
                        )


def _describe_order(nodes: list[Node]) -> list[Node]:
    """Sources first, then every node after all its parents, as Kafka Streams prints them."""
    placed: list[Node] = [n for n in nodes if isinstance(n, SourceNode)]
    seen = {n.name for n in placed}
    rest = [n for n in nodes if n.name not in seen]
    while rest:
        progressed = False
        for node in list(rest):
            if all(p in seen for p in getattr(node, "parents", [])):
                placed.append(node)
                seen.add(node.name)
                rest.remove(node)
                progressed = True
        if not progressed:  # a cycle: cannot happen through the DSL; print as is
            placed.extend(rest)
            break
    return placed


def user_processor_factory(name: str, supplier: ProcessorSupplier) -> NodeFactory:
    """Wrap a user `Processor` into a node: one instance per task, a `Record` per input."""
    from topicflow.processor.context import ProcessorContextImpl

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        processor = supplier()
        if not hasattr(processor, "process"):
            raise TopologyError(
                f"processor supplier of {name!r} returned {type(processor).__name__}, "
                "which has no process(record) method"
            )
        processor.init(ProcessorContextImpl(task, name, children))
        if hasattr(processor, "flush"):
            task.on_commit(processor.flush)
        task.on_close(processor.close)
        rc = task.record_context
        process_record = processor.process

        def process(key: Any, value: Any) -> None:
            message = rc.message
            if message is None:
                process_record(Record(key, value, rc.timestamp, rc.headers))
            else:
                process_record(
                    Record(
                        key,
                        value,
                        rc.timestamp,
                        rc.headers,
                        message.topic(),
                        message.partition(),
                        message.offset(),
                    )
                )

        return process

    return factory
