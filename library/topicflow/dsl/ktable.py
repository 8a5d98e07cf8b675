"""KTable: a changelog stream, the latest value per key.

Aggregations return KTables; `builder.table(topic)` reads one from a topic.
Keys of windowed aggregations are `Windowed(key, window)`. A null value is a
deletion (a tombstone): `filter` turns records that fail the predicate into
tombstones, as Kafka Streams does, so downstream tables forget them. Below a
table that owns a store, a filter also receives each update's old value
(`topicflow.dsl.changes`) and, as Kafka's KTableFilter, forwards nothing for
an update that fails the predicate before and after. The nodes themselves are in
`topicflow.dsl.table_operations`; those of joins with another table (on the key,
or on a foreign key) in `topicflow.dsl.table_joins` and
`topicflow.dsl.foreign_key_join`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic

import topicflow.dsl.foreign_key_join as fk
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.joins import ValueCompute
from topicflow.dsl.operations import pass_through_node
from topicflow.dsl.options import Grouped, K, Materialized, Named, Suppressed, TableJoined, V
from topicflow.dsl.table_aggregate import table_repartition_map_node
from topicflow.dsl.table_joins import (
    JoinKind,
    ValueGetter,
    derived_value_getter,
    join_value_getter,
    store_value_getter,
    table_join_merge_node,
    table_join_node,
)
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
from topicflow.serdes import Serdes
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
        *,
        serdes_of_parent: bool = False,
        join_sides: tuple[KTable, KTable] | None = None,
        join_view: ValueGetter | None = None,
    ) -> None:
        """`old_values`: the cell of a table whose node can send old values (one that
        owns its store: an aggregation, a materialized `builder.table`); None for one
        that cannot. `emit`: a windowed aggregation's emit strategy, which
        `suppress` sets; None for any other table. `parent`: the table this one
        derives from (by filter or map_values), None for a source or an aggregation.
        `source`: a `builder.table`'s origin, which a join can materialize.
        `compute`: how a derived table's value follows from its parent's (its
        value getter, for joins). `serdes_of_parent`: a filter's values are its
        parent's, and so are its serdes (Kafka's KTableImpl). `join_sides`: a
        table-table join's two tables, `this` first; `join_view`: how its values
        are looked up when it is not materialized."""
        self._graph = graph
        self._node = node_name
        self._store_name = store_name
        self._windows = windows
        self._emit = emit
        self._parent = parent
        self._old_values = old_values
        self._source = source
        self._compute = compute
        self._serdes_of_parent = serdes_of_parent
        self._join_sides = join_sides
        self._join_view = join_view

    def _enable_sending_old_values(self, force: bool = False) -> bool:
        """Kafka Streams' KTableImpl.enableSendingOldValues(force): ask this table's
        node, and the tables above it, to send each update's old value; whether they can.

        Only a table with a store knows its old values. With `force` (`group_by`,
        `suppress`, a table-table or foreign-key join), a `builder.table` that was
        not materialized is materialized now, so that it can; without it, such a
        table can only once something else materialized it (a join's lookup).
        """
        source = self._source
        if (
            self._old_values is None
            and source is not None
            and (force or source.store.name is not None)
        ):
            self._graph.materialize_source(self._node, source)
            self._old_values = source.old_values
        if self._old_values is None:
            return False
        if self._join_sides is not None:
            # KTableKTableJoinMerger: the sides' tables send theirs, whatever it takes.
            for side in self._join_sides:
                side._enable_sending_old_values(True)
            self._old_values.sent = True
            return True
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
        serdes_of_parent: bool = False,
    ) -> KTable:
        name = self._graph.node_name(kind, named)
        self._graph.add_processor(name, factory, self._node)
        return self._graph.new_table(
            name,
            windows=self._windows,
            old_values=old_values,
            parent=self,
            compute=compute,
            serdes_of_parent=serdes_of_parent,
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

        return self._then(
            "KTABLE-FILTER",
            table_filter_node(predicate, keep_if, old_values),
            named,
            old_values,
            compute,
            serdes_of_parent=True,
        )

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
            replay_safe=False,
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

    # -- table-table joins (Kafka Streams' KTableImpl.doJoin) ---------------------------

    def join(
        self,
        other: KTable,
        joiner: Callable[[Any, Any], Any],
        named: Named | TableJoined | str | None = None,
        materialized: Materialized | None = None,
        *,
        foreign_key_extractor: Callable[..., Any] | None = None,
        extractor_with_key: bool = False,
    ) -> KTable:
        """The table of `joiner(value, other_value)` for the keys both tables have,
        updated when either table is (Kafka Streams' KTable-KTable inner join).

        With `foreign_key_extractor`, a foreign-key join (KIP-213): each row joins the
        row of `other` whose key is `foreign_key_extractor(value)` (`(key, value)` with
        `extractor_with_key`), through two internal topics; the result is keyed as
        this table. `named` (a `TableJoined`, or its name) then names the join's
        nodes, topics and store; `materialized` needs a store name to materialize
        the result."""
        if foreign_key_extractor is not None:
            return self._join_on_foreign_key(
                other, foreign_key_extractor, extractor_with_key, joiner, named, materialized, False
            )
        return self._join_table(other, joiner, named, materialized, "inner")

    def left_join(
        self,
        other: KTable,
        joiner: Callable[[Any, Any], Any],
        named: Named | TableJoined | str | None = None,
        materialized: Materialized | None = None,
        *,
        foreign_key_extractor: Callable[..., Any] | None = None,
        extractor_with_key: bool = False,
    ) -> KTable:
        """As `join`, for every key of this table: `joiner(value, None)` where the
        other table has no value (or, joining on a foreign key, where the value has
        none: `joiner(value, None)`)."""
        if foreign_key_extractor is not None:
            return self._join_on_foreign_key(
                other, foreign_key_extractor, extractor_with_key, joiner, named, materialized, True
            )
        return self._join_table(other, joiner, named, materialized, "left")

    def outer_join(
        self,
        other: KTable,
        joiner: Callable[[Any, Any], Any],
        named: Named | str | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        """As `join`, for every key of either table, with None for the missing value."""
        return self._join_table(other, joiner, named, materialized, "outer")

    def _join_table(
        self,
        other: KTable,
        joiner: Callable[[Any, Any], Any],
        named: Named | TableJoined | str | None,
        materialized: Materialized | None,
        kind: JoinKind,
    ) -> KTable:
        if other._graph is not self._graph:
            raise TopologyError("join: both tables must come from the same StreamsBuilder")
        if isinstance(named, TableJoined):
            raise TopologyError("TableJoined names a foreign-key join: give Named here")
        graph = self._graph
        # Kafka Streams' order of generated names: the store, the merge node, the sides.
        store = None
        if materialized is not None:
            store = materialized.store_name or graph.node_name("KTABLE-MERGE-STATE-STORE", None)
        base = named.name if isinstance(named, Named) else named
        merge = graph.node_name("KTABLE-MERGE", base)
        if kind != "inner":
            self._enable_sending_old_values(True)
        if kind == "outer":
            other._enable_sending_old_values(True)
        this_view, other_view = self._value_getter_supplier(), other._value_getter_supplier()
        this_name = graph.node_name("KTABLE-JOINTHIS", base and f"{base}-join-this")
        other_name = graph.node_name("KTABLE-JOINOTHER", base and f"{base}-join-other")

        def reversed_joiner(other_value: Any, value: Any) -> Any:
            return joiner(value, other_value)

        old_values = OldValues()
        other_kind: JoinKind = "right" if kind == "left" else kind
        graph.add_processor(
            this_name, table_join_node(kind, other_view, joiner, old_values), self._node
        )
        graph.add_processor(
            other_name,
            table_join_node(other_kind, this_view, reversed_joiner, old_values),
            other._node,
        )
        graph.add_processor(merge, table_join_merge_node(store, old_values), this_name, other_name)
        graph.topology.connect_processor_and_state_stores(this_name, stores=other_view.stores)
        graph.topology.connect_processor_and_state_stores(other_name, stores=this_view.stores)
        graph.copartition(self._node, other._node)
        if store is not None:
            assert materialized is not None
            graph.add_table_store(store, merge, materialized)
        return graph.new_table(
            merge,
            store_name=store,
            old_values=old_values,
            join_sides=(self, other),
            join_view=join_value_getter(kind, this_view, other_view, joiner),
        )

    def _value_getter_supplier(self) -> ValueGetter:
        """Kafka Streams' valueGetterSupplier: the stores this table's values are read
        from, and how a task reads a key's value and timestamp there. Unlike
        `value_getter`, it reads a join table that is not materialized (from both
        of its tables' stores)."""
        if self._store_name is None and self._windows is None and self._emit is None:
            if self._join_view is not None:
                return self._join_view
            if self._source is None and self._parent is not None and self._compute is not None:
                return derived_value_getter(self._parent._value_getter_supplier(), self._compute)
        store, compute = self.value_getter()
        return store_value_getter(store, compute)

    # -- foreign-key joins (Kafka Streams' KTableImpl.doJoinOnForeignKey) ----------------

    def _join_on_foreign_key(
        self,
        other: KTable,
        extractor: Callable[..., Any],
        with_key: bool,
        joiner: Callable[[Any, Any], Any],
        named: Named | TableJoined | str | None,
        materialized: Materialized | None,
        left: bool,
    ) -> KTable:
        if other._graph is not self._graph:
            raise TopologyError("join: both tables must come from the same StreamsBuilder")
        graph = self._graph
        if not isinstance(named, TableJoined):
            named = TableJoined(named.name if isinstance(named, Named) else named)
        base = named.name
        placement = named.other_partitioner

        def name(kind: str, suffix: str) -> str:
            return graph.node_name(kind, base and f"{base}-{suffix}")

        def extract(key: Any, value: Any) -> Any:
            return extractor(key, value) if with_key else extractor(value)

        # Old values tell which foreign key a row leaves; Kafka forces both tables.
        other._enable_sending_old_values(True)
        self._enable_sending_old_values(True)
        key_serde, value_serde = self._serdes()
        fk_serde, foreign_value_serde = other._serdes()
        registration = name(fk.REGISTRATION, "subscription-registration") + "-topic"
        send = name(fk.REGISTRATION, "subscription-registration-processor")
        graph.add_processor(
            send,
            fk.subscription_send_node(extract, left, fk_serde, key_serde, value_serde),
            self._node,
        )
        receive_source = graph.through_internal_topic(
            [send],
            registration,
            name("KTABLE-SINK", "subscription-registration-sink"),
            name("KTABLE-SOURCE", "subscription-registration-source"),
            fk_serde,
            fk_serde,
            None if placement is None else fk.subscription_partitioner(placement),
        )
        store = name(fk.STORE, "subscription-store")
        receive = name(fk.PROCESSOR, "subscription-receive")
        graph.add_processor(receive, fk.subscription_receive_node(store, fk_serde), receive_source)
        graph.add_subscription_store(store, receive)
        foreign_values = other._value_getter_supplier()
        join_foreign = name(fk.PROCESSOR, "subscription-join-foreign")
        graph.add_processor(
            join_foreign, fk.subscription_join_node(foreign_values, foreign_value_serde), receive
        )
        graph.topology.connect_processor_and_state_stores(
            join_foreign, stores=foreign_values.stores
        )
        foreign_join = name(fk.PROCESSOR, "foreign-join-subscription")
        graph.add_processor(
            foreign_join,
            fk.foreign_table_join_node(store, fk_serde, foreign_value_serde),
            other._node,
        )
        graph.topology.connect_processor_and_state_stores(foreign_join, stores=[store])
        # Subscriptions meet the foreign table's rows: in its partitions.
        graph.copartition(receive_source, other._node)
        response = name(fk.RESPONSE, "subscription-response") + "-topic"
        response_source = graph.through_internal_topic(
            [join_foreign, foreign_join],
            response,
            name("KTABLE-SINK", "subscription-response-sink"),
            name("KTABLE-SOURCE", "subscription-response-source"),
            Serdes.Bytes(),  # the primary keys travel serialized already
            key_serde,
            fk.response_partitioner,
        )
        left_values = self._value_getter_supplier()
        resolver = name(fk.RESOLVER, "subscription-response-resolver")
        graph.add_processor(
            resolver,
            fk.response_join_node(left_values, joiner, left, value_serde, foreign_value_serde),
            response_source,
        )
        graph.topology.connect_processor_and_state_stores(resolver, stores=left_values.stores)
        # Responses meet the left table's rows: in its partitions.
        graph.copartition(response_source, self._node)
        result = name(fk.OUTPUT, "result")
        if materialized is not None and materialized.store_name is not None:
            return graph.foreign_key_join_result(
                result, resolver, materialized.store_name, materialized
            )
        generated = graph.node_name(f"{fk.OUTPUT}-STATE-STORE", None)
        return graph.foreign_key_join_result(result, resolver, generated, None)
