"""KTable: a changelog stream, the latest value per key.

Aggregations return KTables; `builder.table(topic)` reads one from a topic.
Keys of windowed aggregations are `Windowed(key, window)`. A null value is a
deletion (a tombstone): `filter` turns records that fail the predicate into
tombstones, as Kafka Streams does, so downstream tables forget them. Below a
table that owns a store, a filter also receives each update's old value
(`topicflow.dsl.changes`) and, as Kafka's KTableFilter, forwards nothing for
an update that fails the predicate before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl import operations as ops
from topicflow.dsl.changes import EmitStrategy, OldValues, forward_at
from topicflow.dsl.options import Named, Suppressed
from topicflow.dsl.windows import TimeWindows
from topicflow.errors import TopologyError
from topicflow.topology.nodes import Forward, NodeFactory, ProcessorNode, TaskContext, forward_to

if TYPE_CHECKING:
    from topicflow.dsl.builder import StreamsBuilder
    from topicflow.dsl.kstream import KStream


class KTable:
    def __init__(
        self,
        builder: StreamsBuilder,
        node_name: str,
        store_name: str | None = None,
        windows: TimeWindows | None = None,
        old_values: OldValues | None = None,
        emit: EmitStrategy | None = None,
    ) -> None:
        """`old_values`: the cell of a table whose node can send old values (one that
        owns its store: an aggregation, a materialized `builder.table`); None for one
        that cannot. `emit`: a windowed aggregation's emit strategy, which
        `suppress` sets; None for any other table."""
        self._builder = builder
        self._node = node_name
        self._store_name = store_name
        self._windows = windows
        self._emit = emit
        self._derived = False
        self._parent: KTable | None = None
        self._old_values = old_values

    def _enable_sending_old_values(self) -> bool:
        """Kafka Streams' KTableImpl.enableSendingOldValues(false): ask this table's
        node, and the tables above it, to send each update's old value; whether they can."""
        if self._old_values is None:
            return False
        if self._parent is None or self._parent._enable_sending_old_values():
            self._old_values.sent = True
        return self._old_values.sent

    @property
    def node_name(self) -> str:
        return self._node

    @property
    def queryable_store_name(self) -> str | None:
        return self._store_name

    def _then(
        self, kind: str, factory: NodeFactory, named: Named | str | None, old_values: OldValues
    ) -> KTable:
        name = self._builder.node_name(kind, named)
        self._builder.topology.add_node(ProcessorNode(name, factory, [self._node]))
        table = KTable(self._builder, name, None, self._windows, old_values)
        table._derived = True
        table._parent = self
        return table

    def filter(
        self, predicate: Callable[[Any, Any], bool], named: Named | str | None = None
    ) -> KTable:
        return self._filter(predicate, True, named)

    def filter_not(
        self, predicate: Callable[[Any, Any], bool], named: Named | str | None = None
    ) -> KTable:
        return self._filter(predicate, False, named)

    def _filter(
        self, predicate: Callable[[Any, Any], bool], keep_if: bool, named: Named | str | None
    ) -> KTable:
        # As KTableFilter's constructor: a filter takes old values whenever the
        # table above can send them, so that it can drop a tombstone for a key
        # whose old value it filtered out too.
        old_values = OldValues()
        old_values.sent = self._enable_sending_old_values()
        return self._then(
            "KTABLE-FILTER", _table_filter(predicate, keep_if, old_values), named, old_values
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
        return self._then(
            "KTABLE-MAPVALUES", _table_map_values(mapper, with_key, old_values), named, old_values
        )

    def to_stream(self, named: Named | str | None = None) -> KStream[Any, Any]:
        from topicflow.dsl.kstream import KStream

        name = self._builder.node_name("KTABLE-TOSTREAM", named)
        self._builder.topology.add_node(ProcessorNode(name, ops.pass_through_node(), [self._node]))
        return KStream(self._builder, name, key_changed=False)

    def suppress(self, suppressed: Suppressed) -> KTable:
        """One final result per window, once stream time passes its end plus grace.

        Supported directly on a windowed aggregation's table (the common use): the
        aggregation then emits on window close instead of on every update.
        """
        if self._emit is None or self._emit.on_window_close or self._derived:
            raise TopologyError(
                "suppress(Suppressed.until_window_closes()) is supported directly on the "
                "table of a windowed aggregation (windowed_by(...).count() etc.)"
            )
        self._emit.on_window_close = True
        return self


def _table_filter(
    predicate: Callable[[Any, Any], bool], keep_if: bool, old_values: OldValues
) -> NodeFactory:
    """Kafka Streams' KTableFilter: a value that fails the predicate becomes a tombstone.

    With old values, an update whose new and old values both fail (or are null)
    changes nothing downstream and is dropped; the old value passed on is the
    filtered one.
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if not old_values.sent:

            def table_filter(key: Any, value: Any) -> None:
                if value is None or bool(predicate(key, value)) == keep_if:
                    forward(key, value)
                else:
                    forward(key, None)

            return table_filter
        rc = task.record_context

        def table_filter_with_old(key: Any, value: Any) -> None:
            old_in = rc.old_value
            if value is not None and bool(predicate(key, value)) != keep_if:
                value = None
            old = old_in
            if old is not None and bool(predicate(key, old)) != keep_if:
                old = None
            if value is None and old is None:
                return
            rc.old_value = old
            try:
                forward(key, value)
            finally:
                rc.old_value = old_in

        return table_filter_with_old

    return factory


def _table_map_values(
    mapper: Callable[..., Any], with_key: bool, old_values: OldValues
) -> NodeFactory:
    """Kafka Streams' KTableMapValues: a tombstone stays a tombstone; with old values,
    the old value is mapped as well."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def mapped(key: Any, value: Any) -> Any:
            if value is None:
                return None
            return mapper(key, value) if with_key else mapper(value)

        if not old_values.sent:

            def table_map_values(key: Any, value: Any) -> None:
                forward(key, mapped(key, value))

            return table_map_values
        rc = task.record_context

        def table_map_values_with_old(key: Any, value: Any) -> None:
            old_in = rc.old_value
            rc.old_value = mapped(key, old_in)
            try:
                forward(key, mapped(key, value))
            finally:
                rc.old_value = old_in

        return table_map_values_with_old

    return factory


def table_source_node(store_name: str | None, old_values: OldValues | None) -> NodeFactory:
    """`builder.table(topic)`: each record is the new value of its key (null deletes it).

    As Kafka Streams' KTableSource: a record with a null key is dropped, whether
    the table is materialized or not. A materialized table forwards what its
    store writes through (at once, or at a cache flush), with the value it
    replaced when old values are asked for.
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        metrics = task.metrics
        forward = forward_to(children)
        if store_name is None:

            def table_source(key: Any, value: Any) -> None:
                if key is None:
                    metrics.dropped_records += 1
                    return
                forward(key, value)

            return table_source
        store = task.get_state_store(store_name)
        store.set_flush_listener(forward_at(task.record_context, forward))
        send_old = store.send_old_values = old_values is not None and old_values.sent
        get, put = store.get, store.put

        def materialized_source(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            put(key, value, None, get(key) if send_old else None)

        return materialized_source

    return factory
