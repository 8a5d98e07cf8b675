"""KStream: a record stream, and the stateless operations on it.

Each call adds one node to the topology of the stream's internal builder
(`topicflow.dsl.internal`) and returns the stream downstream of it, named as Kafka
Streams names it (`KSTREAM-FILTER-0000000001`) unless `named` says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import topicflow.dsl.operations as ops
from topicflow.dsl.global_table_join import global_table_join_node
from topicflow.dsl.join_windows import JoinWindows
from topicflow.dsl.joins import stream_table_join_node
from topicflow.dsl.options import (
    Branched,
    Grouped,
    Joined,
    Materialized,
    Named,
    Produced,
    Repartitioned,
)
from topicflow.dsl.stream_joined import StreamJoined
from topicflow.dsl.stream_stream_join_graph import join_streams
from topicflow.errors import TopologyError
from topicflow.processor.api import Processor
from topicflow.topology.nodes import NodeFactory, SinkNode, TopicNameExtractor
from topicflow.topology.topology import user_processor_factory

if TYPE_CHECKING:
    from topicflow.dsl.global_ktable import GlobalKTable
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kgrouped import KGroupedStream
    from topicflow.dsl.ktable import KTable

K = TypeVar("K")
V = TypeVar("V")
# The key and value types a step produces.
KR = TypeVar("KR")
VR = TypeVar("VR")


class KStream(Generic[K, V]):
    """An unbounded stream of key-value records downstream of one node."""

    def __init__(
        self, graph: InternalStreamsBuilder, node_name: str, key_changed: bool = False
    ) -> None:
        self._graph = graph
        self._node = node_name
        # True when an upstream operation may have changed the key: a later
        # grouping must then repartition (Kafka Streams' repartitionRequired).
        self._key_changed = key_changed

    @property
    def node_name(self) -> str:
        return self._node

    def _then(
        self,
        kind: str,
        factory: NodeFactory,
        named: Named | str | None,
        key_changed: bool | None = None,
    ) -> KStream[Any, Any]:
        name = self._graph.node_name(kind, named)
        self._graph.add_processor(name, factory, self._node)
        changed = self._key_changed if key_changed is None else key_changed
        return self._graph.new_stream(name, changed)

    # -- stateless operations ----------------------------------------------------------

    def filter(
        self, predicate: Callable[[K, V], bool], named: Named | str | None = None
    ) -> KStream[K, V]:
        return self._then("FILTER", ops.filter_node(predicate, keep_if=True), named)

    def filter_not(
        self, predicate: Callable[[K, V], bool], named: Named | str | None = None
    ) -> KStream[K, V]:
        return self._then("FILTER", ops.filter_node(predicate, keep_if=False), named)

    def map(
        self, mapper: Callable[[K, V], tuple[KR, VR]], named: Named | str | None = None
    ) -> KStream[KR, VR]:
        return self._then("MAP", ops.map_node(mapper), named, key_changed=True)

    @overload
    def map_values(
        self,
        mapper: Callable[[V], VR],
        named: Named | str | None = None,
        *,
        with_key: Literal[False] = False,
    ) -> KStream[K, VR]: ...

    @overload
    def map_values(
        self,
        mapper: Callable[[K, V], VR],
        named: Named | str | None = None,
        *,
        with_key: Literal[True],
    ) -> KStream[K, VR]: ...

    def map_values(
        self,
        mapper: Callable[..., Any],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, Any]:
        """`mapper(value)`, or `mapper(key, value)` with `with_key=True` (ValueMapperWithKey)."""
        return self._then("MAPVALUES", ops.map_values_node(mapper, with_key), named)

    def flat_map(
        self,
        mapper: Callable[[K, V], Iterable[tuple[KR, VR]]],
        named: Named | str | None = None,
    ) -> KStream[KR, VR]:
        return self._then("FLATMAP", ops.flat_map_node(mapper), named, key_changed=True)

    @overload
    def flat_map_values(
        self,
        mapper: Callable[[V], Iterable[VR]],
        named: Named | str | None = None,
        *,
        with_key: Literal[False] = False,
    ) -> KStream[K, VR]: ...

    @overload
    def flat_map_values(
        self,
        mapper: Callable[[K, V], Iterable[VR]],
        named: Named | str | None = None,
        *,
        with_key: Literal[True],
    ) -> KStream[K, VR]: ...

    def flat_map_values(
        self,
        mapper: Callable[..., Iterable[Any]],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, Any]:
        """`mapper(value)`, or `mapper(key, value)` with `with_key=True`; one record per item."""
        return self._then("FLATMAPVALUES", ops.flat_map_values_node(mapper, with_key), named)

    def select_key(
        self, selector: Callable[[K, V], KR], named: Named | str | None = None
    ) -> KStream[KR, V]:
        return self._then("KEY-SELECT", ops.select_key_node(selector), named, key_changed=True)

    def peek(
        self, action: Callable[[K, V], None], named: Named | str | None = None
    ) -> KStream[K, V]:
        return self._then("PEEK", ops.peek_node(action), named)

    def foreach(self, action: Callable[[K, V], None], named: Named | str | None = None) -> None:
        self._then("FOREACH", ops.foreach_node(action), named)

    def merge(self, other: KStream[K, V], named: Named | str | None = None) -> KStream[K, V]:
        if other._graph is not self._graph:
            raise TopologyError("merge: both streams must come from the same StreamsBuilder")
        name = self._graph.node_name("MERGE", named)
        self._graph.add_processor(name, ops.pass_through_node(), self._node, other._node)
        return self._graph.new_stream(name, self._key_changed or other._key_changed)

    def split(self, named: Named | str | None = None) -> BranchedKStream[K, V]:
        """Start routing records to branches: `.branch(predicate, ...)...default_branch()`."""
        name = self._graph.node_name("BRANCH", named)
        return self._graph.new_split(self._node, self._key_changed, name)

    # -- leaving the stream ------------------------------------------------------------

    def to(self, topic: str | TopicNameExtractor, produced: Produced[K, V] | None = None) -> None:
        """Write to a topic, or to the topic `topic(key, value, record_context)` names."""
        produced = produced or Produced()
        name = produced.name or self._graph.node_name("SINK", None)
        extractor = None if isinstance(topic, str) else topic
        sink = SinkNode(
            name,
            [self._node],
            topic if isinstance(topic, str) else None,
            extractor,
            produced.key_serde,
            produced.value_serde,
            produced.partitioner,
        )
        self._graph.topology.add_node(sink)

    def repartition(self, repartitioned: Repartitioned | None = None) -> KStream[K, V]:
        """Write through an internal topic `{application_id}-{name}-repartition` and read it back.

        Records are then partitioned by their current key, so downstream tasks
        see every record of a key in one partition.
        """
        repartitioned = repartitioned or Repartitioned()
        base = repartitioned.name or self._graph.node_name("REPARTITION", None)
        # Kafka Streams drops null keys before a repartition topic (KStreamImpl's
        # repartition filter), for repartition() as for a grouping.
        source = self._graph.through_repartition_topic(
            self._node,
            base,
            repartitioned.key_serde,
            repartitioned.value_serde,
            repartitioned.number_of_partitions,
            repartitioned.partitioner,
            drop_null_keys=True,
        )
        return self._graph.new_stream(source)

    # -- grouping ----------------------------------------------------------------------

    def group_by_key(self, grouped: Grouped[K, V] | None = None) -> KGroupedStream:
        """Group by the current key; repartitions first if the key may have changed."""
        return self._graph.new_grouped_stream(self._node, self._key_changed, grouped or Grouped())

    def group_by(
        self, selector: Callable[[K, V], KR], grouped: Grouped[KR, V] | None = None
    ) -> KGroupedStream:
        """Group by `selector(key, value)`: always through a repartition topic."""
        name = self._graph.node_name("KEY-SELECT", None)
        self._graph.add_processor(name, ops.select_key_node(selector), self._node)
        return self._graph.new_grouped_stream(name, True, grouped or Grouped())

    def to_table(
        self, named: Named | str | None = None, materialized: Materialized | None = None
    ) -> KTable:
        """This stream as a table: each record is the new value of its key (a null value
        deletes it, a null key is dropped), as Kafka Streams' `toTable`."""
        return self._graph.to_table(self._node, self._key_changed, named, materialized)

    # -- joins -----------------------------------------------------------------------------

    @overload
    def join(
        self,
        other: KTable,
        joiner: Callable[..., VR],
        joined: Joined | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    @overload
    def join(
        self,
        other: KStream[K, Any],
        joiner: Callable[..., VR],
        windows: JoinWindows,
        stream_joined: StreamJoined | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    @overload
    def join(
        self,
        other: GlobalKTable,
        key_selector: Callable[[K, V], Any],
        joiner: Callable[..., VR],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    def join(self, other: Any, *args: Any, with_key: bool = False, **kwargs: Any) -> KStream[K, VR]:
        """Join with a table: each record with the table's current value of its key,
        `joiner(value, table_value)` (`joiner(key, value, table_value)` with
        `with_key`); records whose key the table does not have are dropped.

        With a stream, within `windows` (JoinWindows): each pair of records of one
        key close enough in time, `joiner(value, other_value)`, at the later of
        their timestamps; `stream_joined` names the join and its stores.

        With a GlobalKTable: `join(global_table, key_selector, joiner, named=None)`,
        looking up `key_selector(key, value)` instead of the key (no repartition).
        """
        return self._join(other, args, kwargs, with_key, left=False)

    @overload
    def left_join(
        self,
        other: KTable,
        joiner: Callable[..., VR],
        joined: Joined | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    @overload
    def left_join(
        self,
        other: KStream[K, Any],
        joiner: Callable[..., VR],
        windows: JoinWindows,
        stream_joined: StreamJoined | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    @overload
    def left_join(
        self,
        other: GlobalKTable,
        key_selector: Callable[[K, V], Any],
        joiner: Callable[..., VR],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]: ...

    def left_join(
        self, other: Any, *args: Any, with_key: bool = False, **kwargs: Any
    ) -> KStream[K, VR]:
        """As `join`, but every record of this stream joins: with None where the table
        has no value; with a stream, with None (once its window has closed) where
        the other stream had no record in its window."""
        return self._join(other, args, kwargs, with_key, left=True)

    def outer_join(
        self,
        other: KStream[K, Any],
        joiner: Callable[..., VR],
        windows: JoinWindows,
        stream_joined: StreamJoined | None = None,
        *,
        with_key: bool = False,
    ) -> KStream[K, VR]:
        """As a stream-stream `left_join`, both ways: a record of either stream that
        met none of the other is joined with None, once its window has closed."""
        return self._join_stream(
            other,
            joiner,
            windows,
            stream_joined,
            with_key=with_key,
            left_outer=True,
            right_outer=True,
        )

    def _join(
        self, other: Any, args: tuple[Any, ...], kwargs: dict[str, Any], with_key: bool, left: bool
    ) -> KStream[K, VR]:
        """`join` or `left_join`: with a stream, a GlobalKTable or a KTable."""
        if isinstance(other, KStream):
            return self._join_stream(other, *args, with_key=with_key, left_outer=left, **kwargs)
        if isinstance(other, self._graph.global_ktable_type):
            return self._join_global_table(other, *args, with_key=with_key, left=left, **kwargs)
        return self._join_table(other, *args, with_key=with_key, left=left, **kwargs)

    def _join_stream(
        self,
        other: KStream[Any, Any],
        joiner: Callable[..., VR],
        windows: JoinWindows | None = None,
        stream_joined: StreamJoined | None = None,
        *,
        with_key: bool = False,
        left_outer: bool = False,
        right_outer: bool = False,
    ) -> KStream[K, VR]:
        if not isinstance(windows, JoinWindows):
            raise TopologyError("a stream-stream join needs JoinWindows")
        if other._graph is not self._graph:
            raise TopologyError("join: both streams must come from the same StreamsBuilder")
        return join_streams(
            self._graph,
            (self._node, self._key_changed),
            (other._node, other._key_changed),
            joiner,
            windows,
            stream_joined,
            with_key,
            left_outer,
            right_outer,
        )

    def _join_global_table(
        self,
        table: GlobalKTable,
        key_selector: Callable[[K, V], Any],
        joiner: Callable[..., VR],
        named: Named | str | None = None,
        *,
        with_key: bool,
        left: bool,
    ) -> KStream[K, VR]:
        graph = self._graph
        # Kafka Streams 4.1 names both joins KSTREAM-LEFTJOIN, and uses up an index
        # even when the join is named.
        generated = graph.node_name("LEFTJOIN", None)
        name = generated if named is None else graph.node_name("LEFTJOIN", named)
        node = global_table_join_node(table.store_name, key_selector, joiner, with_key, left)
        graph.add_processor(name, node, self._node)
        # Every instance holds the whole table: no repartition, even after a key change.
        return graph.new_stream(name, key_changed=self._key_changed)

    def _join_table(
        self,
        table: KTable,
        joiner: Callable[..., VR],
        joined: Joined | None = None,
        *,
        with_key: bool,
        left: bool,
    ) -> KStream[K, VR]:
        if joined is not None and not isinstance(joined, Joined):
            raise TopologyError(
                f"a stream-table join takes Joined, not {type(joined).__name__} "
                "(JoinWindows are for joining two streams)"
            )
        joined = joined or Joined()
        graph = self._graph
        parent = self._node
        if self._key_changed:
            # As Kafka Streams: records go through a repartition topic first, so
            # that each meets the table's partition holding its key. A null key
            # stops at the topic's filter for a join, and goes through for a left
            # join, which joins it with no table value (KIP-962).
            parent = graph.through_repartition_topic(
                parent,
                joined.name or self._node,
                joined.key_serde,
                joined.value_serde,
                None,
                drop_null_keys=True,
                keep_null_keys=left,
            )
        values = table._value_getter_supplier()
        name = graph.node_name("LEFTJOIN" if left else "JOIN", joined.name)
        graph.add_processor(name, stream_table_join_node(values, joiner, with_key, left), parent)
        graph.topology.connect_processor_and_state_stores(name, stores=values.stores)
        graph.copartition(parent, table.node_name)
        return graph.new_stream(name, key_changed=False)

    # -- processors ---------------------------------------------------------------------

    def process(
        self,
        supplier: Callable[[], Processor[K, V, KR, VR]],
        *store_names: str,
        named: Named | str | None = None,
    ) -> KStream[KR, VR]:
        """Run a user `Processor` (a fresh one per task from `supplier()`); returns its output."""
        name = self._graph.node_name("PROCESSOR", named)
        self._graph.add_processor(name, user_processor_factory(name, supplier), self._node)
        if store_names:
            self._graph.topology.connect_processor_and_state_stores(name, stores=list(store_names))
        return self._graph.new_stream(name, key_changed=True)


class BranchedKStream(Generic[K, V]):
    """The result of `split()`: add branches, then end with `default_branch()` or
    `no_default_branch()`, which return the branches by name.

    Branch names are the split's name (or `KSTREAM-BRANCH-0000000001`) followed
    by the branch's name, or by its number from 1; the default branch is `0`.
    """

    def __init__(
        self, graph: InternalStreamsBuilder, parent: str, key_changed: bool, node_name: str
    ) -> None:
        self._graph = graph
        self._parent = parent
        self._key_changed = key_changed
        # The split's node; its name prefixes its branches' names.
        self._node = node_name
        self._predicates: list[Callable[[K, V], bool]] = []
        self._branches: list[tuple[str, Branched]] = []
        self._done = False

    def branch(
        self, predicate: Callable[[K, V], bool], branched: Branched | None = None
    ) -> BranchedKStream[K, V]:
        self._check_open()
        branched = branched or Branched()
        index = len(self._predicates) + 1
        self._predicates.append(predicate)
        self._branches.append((self._branch_name(branched, str(index)), branched))
        return self

    def default_branch(self, branched: Branched | None = None) -> dict[str, KStream[K, V]]:
        self._check_open()
        branched = branched or Branched()
        self._branches.append((self._branch_name(branched, "0"), branched))
        return self._finish(has_default=True)

    def no_default_branch(self) -> dict[str, KStream[K, V]]:
        self._check_open()
        return self._finish(has_default=False)

    def _branch_name(self, branched: Branched, suffix: str) -> str:
        # Kafka Streams spends a generated index on every branch, named or not.
        if branched.name is None:
            self._graph.node_name("BRANCH", None)
        return self._node + (branched.name or suffix)

    def _check_open(self) -> None:
        if self._done:
            raise TopologyError("this split() is finished; start a new one with stream.split()")

    def _finish(self, has_default: bool) -> dict[str, KStream[K, V]]:
        self._done = True
        graph = self._graph
        graph.add_processor(
            self._node, ops.branch_node(list(self._predicates), has_default), self._parent
        )
        result: dict[str, KStream[K, V]] = {}
        for branch_name, branched in self._branches:
            graph.add_processor(branch_name, ops.pass_through_node(), self._node)
            stream: KStream[K, V] = graph.new_stream(branch_name, self._key_changed)
            if branched.chain is None:
                result[branch_name] = stream
            else:
                chained = branched.chain(stream)
                if chained is not None:
                    result[branch_name] = chained
        return result
