"""KTable: a changelog stream, the latest value per key.

Aggregations return KTables; `builder.table(topic)` reads one from a topic.
Keys of windowed aggregations are `Windowed(key, window)`. A null value is a
deletion (a tombstone): `filter` turns records that fail the predicate into
tombstones, as Kafka Streams does, so downstream tables forget them. Below a
table that owns a store, a filter also receives each update's old value
(`topicflow.dsl.changes`) and, as Kafka's KTableFilter, forwards nothing for
an update that fails the predicate before and after. The nodes themselves are in
`topicflow.dsl.table_operations`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic

from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.joins import ValueCompute
from topicflow.dsl.operations import pass_through_node
from topicflow.dsl.options import Grouped, K, Named, Suppressed, V
from topicflow.dsl.table_aggregate import table_repartition_map_node
from topicflow.dsl.table_operations import (
    TableSource,
    table_filter_node,
    table_map_values_node,
)
from topicflow.dsl.table_suppress import (
    buffer_entry_serde_of,
    source_topic_of,
    suppress_time_limit_node,
)
from topicflow.dsl.windows import TimeWindows
from topicflow.errors import TopologyError
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import NodeFactory

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kgrouped_table import KGroupedTable
    from topicflow.dsl.kstream import KStream


class KTable(Generic[K, V]):
    """A table of `K` keys and `V` values; a bare `KTable` is `KTable[Any, Any]`."""

    def __init__(
        self,
        graph: InternalStreamsBuilder,
        node_name: str,
        store_name: str | None = None,
        windows: TimeWindows | None = None,
        old_values: OldValues | None = None,
        emit: EmitStrategy | None = None,
        parent: KTable | None = None,
        source: TableSource | None = None,
        compute: ValueCompute | None = None,
    ) -> None:
        """`old_values`: the cell of a table whose node can send old values (one that
        owns its store: an aggregation, a materialized `builder.table`); None for one
        that cannot. `emit`: a windowed aggregation's emit strategy, which
        `suppress` sets; None for any other table. `parent`: the table this one
        derives from (by filter or map_values), None for a source or an aggregation.
        `source`: a `builder.table`'s origin, which a join can materialize.
        `compute`: how a derived table's value follows from its parent's (its
        value getter, for joins)."""
        self._graph = graph
        self._node = node_name
        self._store_name = store_name
        self._windows = windows
        self._emit = emit
        self._parent = parent
        self._old_values = old_values
        self._source = source
        self._compute = compute
        # A filter's values are its parent's: so are its serdes (Kafka's KTableImpl).
        self._serdes_of_parent = False

    def _enable_sending_old_values(self, force: bool = False) -> bool:
        """Kafka Streams' KTableImpl.enableSendingOldValues(force): ask this table's
        node, and the tables above it, to send each update's old value; whether they can.
        With `force`, a `builder.table` that was not materialized is materialized
        now, so that it can (`group_by` and `suppress` need the old values)."""
        if self._old_values is None and force and self._source is not None:
            self._graph.materialize_source(self._node, self._source)
            self._old_values = self._source.old_values
        if self._old_values is None:
            return False
        if self._parent is None or self._parent._enable_sending_old_values(force):
            self._old_values.sent = True
        return self._old_values.sent

    @property
    def node_name(self) -> str:
        return self._node

    @property
    def queryable_store_name(self) -> str | None:
        return self._store_name

    def _then(
        self,
        kind: str,
        factory: NodeFactory,
        named: Named | str | None,
        old_values: OldValues,
        compute: ValueCompute,
    ) -> KTable:
        name = self._graph.node_name(kind, named)
        self._graph.add_processor(name, factory, self._node)
        return self._graph.new_table(
            name, windows=self._windows, old_values=old_values, parent=self, compute=compute
        )

    def value_getter(self) -> tuple[str, ValueCompute | None]:
        """How to look up this table's current value of a key (Kafka Streams'
        KTableValueGetterSupplier): the key-value store to read, and what turns
        the stored value into this table's (None: it is this table's).

        A `builder.table` that was not materialized is materialized now.
        """
        if self._windows is not None or self._emit is not None:
            raise TopologyError(
                f"the windowed table of {self._node} cannot be joined: join a KTable "
                "with plain keys (builder.table, a non-windowed aggregation, or one "
                "derived from them by filter or map_values)"
            )
        if self._store_name is not None:
            return self._store_name, None
        if self._source is not None:
            return self._graph.materialize_source(self._node, self._source), None
        if self._parent is not None and self._compute is not None:
            store, above = self._parent.value_getter()
            compute = self._compute
            if above is None:
                return store, compute
            return store, lambda key, value: compute(key, above(key, value))
        raise TopologyError(f"the values of table {self._node} cannot be looked up")

    def filter(
        self, predicate: Callable[[K, V], bool], named: Named | str | None = None
    ) -> KTable[K, V]:
        return self._filter(predicate, True, named)

    def filter_not(
        self, predicate: Callable[[K, V], bool], named: Named | str | None = None
    ) -> KTable[K, V]:
        return self._filter(predicate, False, named)

    def _filter(
        self, predicate: Callable[[Any, Any], bool], keep_if: bool, named: Named | str | None
    ) -> KTable:
        # As KTableFilter's constructor: a filter takes old values whenever the
        # table above can send them, so that it can drop a tombstone for a key
        # whose old value it filtered out too.
        old_values = OldValues()
        old_values.sent = self._enable_sending_old_values()

        def compute(key: Any, value: Any) -> Any:
            if value is None or bool(predicate(key, value)) != keep_if:
                return None
            return value

        filtered = self._then(
            "KTABLE-FILTER",
            table_filter_node(predicate, keep_if, old_values),
            named,
            old_values,
            compute,
        )
        filtered._serdes_of_parent = True
        return filtered

    def map_values(
        self,
        mapper: Callable[..., Any],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KTable:
        # Maps old values too once a table below asks for them (KTableMapValues).
        old_values = OldValues()

        def compute(key: Any, value: Any) -> Any:
            if value is None:
                return None
            return mapper(key, value) if with_key else mapper(value)

        return self._then(
            "KTABLE-MAPVALUES",
            table_map_values_node(mapper, with_key, old_values),
            named,
            old_values,
            compute,
        )

    def group_by(
        self, selector: Callable[[Any, Any], Any], grouped: Grouped | None = None
    ) -> KGroupedTable:
        """Regroup the rows: `selector(key, value)` gives each row's (new key, new value),
        and `count`, `reduce` or `aggregate` of the result follow the table, an update
        leaving its old group and joining its new one (Kafka Streams' groupBy)."""
        grouped = grouped or Grouped()
        # Kafka Streams takes an index for the select node even when Grouped names it.
        name = self._graph.node_name("KTABLE-SELECT", None)
        name = grouped.name or name
        self._graph.add_processor(name, table_repartition_map_node(selector), self._node)
        # The select node needs each update's old value, to take it from its group.
        self._enable_sending_old_values(force=True)
        return self._graph.new_grouped_table(name, grouped)

    def to_stream(self, named: Named | str | None = None) -> KStream[K, V]:
        name = self._graph.node_name("KTABLE-TOSTREAM", named)
        self._graph.add_processor(name, pass_through_node(), self._node)
        return self._graph.new_stream(name, key_changed=False)

    def suppress(self, suppressed: Suppressed) -> KTable:
        """`until_window_closes()`: one final result per window, once stream time passes
        its end plus grace. Supported directly on a windowed aggregation's table (the
        common use): the aggregation then emits on window close instead of on every
        update.

        `until_time_limit(time_to_wait, buffer_config)`: on a table with plain keys,
        each key's latest update, held until stream time reaches the time of its
        first held update plus `time_to_wait` (`topicflow.dsl.table_suppress`).
        """
        if suppressed.time_to_wait_ms is not None:
            return self._suppress_time_limit(suppressed)
        if self._emit is None or self._emit.on_window_close:
            raise TopologyError(
                "suppress(Suppressed.until_window_closes()) is supported directly on the "
                "table of a windowed aggregation (windowed_by(...).count() etc.)"
            )
        self._emit.on_window_close = True
        return self

    def _suppress_time_limit(self, suppressed: Suppressed) -> KTable:
        if self._windows is not None or self._emit is not None:
            raise TopologyError(
                "suppress(Suppressed.until_time_limit(...)) is supported on tables with "
                "plain keys; on a windowed aggregation use until_window_closes()"
            )
        graph = self._graph
        # Kafka Streams' order: the processor's name, then the buffer store's.
        name = graph.node_name("KTABLE-SUPPRESS", suppressed.name)
        if suppressed.name is not None:
            store = f"{suppressed.name}-store"
        else:
            store = graph.node_name("KTABLE-SUPPRESS-STATE-STORE", None)
        # The buffer keeps each key's value before it was buffered: the table sends
        # old values (a builder.table is materialized for them).
        self._enable_sending_old_values(force=True)
        key_serde, value_serde = self._serdes()
        graph.add_processor(
            name,
            suppress_time_limit_node(
                name,
                store,
                suppressed.time_to_wait_ms or 0,
                suppressed.buffer_config,
                source_topic_of(graph.topology, self._node),
            ),
            self._node,
        )
        spec = StoreSpec(
            store,
            "key_value",
            key_serde,
            buffer_entry_serde_of(value_serde),
            caching=False,
            changelog_config={"cleanup.policy": "compact"},
        )
        graph.topology.add_state_store(spec, name)
        # Every update it emits carries its old value.
        old_values = OldValues()
        old_values.sent = True
        return graph.new_table(name, old_values=old_values)

    def _serdes(self) -> tuple[Any, Any]:
        """This table's key and value serdes where it knows them (its store's, or its
        source's), else (None, None): the defaults."""
        if self._store_name is not None:
            spec = self._graph.topology.state_stores.get(self._store_name)
            if spec is not None:
                return spec.key_serde, spec.value_serde
        if self._source is not None:
            return self._source.key_serde, self._source.value_serde
        if self._parent is not None and self._serdes_of_parent:
            return self._parent._serdes()
        return None, None
