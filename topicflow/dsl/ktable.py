"""KTable: a changelog stream, the latest value per key.

Aggregations return KTables; `builder.table(topic)` reads one from a topic.
Keys of windowed aggregations are `Windowed(key, window)`. A null value is a
deletion (a tombstone): `filter` turns records that fail the predicate into
tombstones, as Kafka Streams does, so downstream tables forget them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl import operations as ops
from topicflow.dsl.aggregations import forward_at
from topicflow.dsl.options import Named, Suppressed
from topicflow.dsl.windows import TimeWindows
from topicflow.errors import TopologyError
from topicflow.topology.nodes import Forward, NodeFactory, ProcessorNode, TaskContext

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
    ) -> None:
        self._builder = builder
        self._node = node_name
        self._store_name = store_name
        self._windows = windows
        # Set by a windowed aggregation: turns it into emit-on-window-close.
        self._switch_to_emit_final: Callable[[], None] | None = None
        self._derived = False

    @property
    def node_name(self) -> str:
        return self._node

    @property
    def queryable_store_name(self) -> str | None:
        return self._store_name

    def _then(self, kind: str, factory: NodeFactory, named: Named | str | None) -> KTable:
        name = self._builder.node_name(kind, named)
        self._builder.topology.add_node(ProcessorNode(name, factory, [self._node]))
        table = KTable(self._builder, name, None, self._windows)
        table._derived = True
        return table

    def filter(
        self, predicate: Callable[[Any, Any], bool], named: Named | str | None = None
    ) -> KTable:
        return self._then("KTABLE-FILTER", _table_filter(predicate, keep_if=True), named)

    def filter_not(
        self, predicate: Callable[[Any, Any], bool], named: Named | str | None = None
    ) -> KTable:
        return self._then("KTABLE-FILTER", _table_filter(predicate, keep_if=False), named)

    def map_values(
        self,
        mapper: Callable[..., Any],
        named: Named | str | None = None,
        *,
        with_key: bool = False,
    ) -> KTable:
        return self._then("KTABLE-MAPVALUES", _table_map_values(mapper, with_key), named)

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
        if self._switch_to_emit_final is None or self._derived:
            raise TopologyError(
                "suppress(Suppressed.until_window_closes()) is supported directly on the "
                "table of a windowed aggregation (windowed_by(...).count() etc.)"
            )
        self._switch_to_emit_final()
        self._switch_to_emit_final = None
        return self


def _table_filter(predicate: Callable[[Any, Any], bool], keep_if: bool) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = ops.forward_to(children)

        def table_filter(key: Any, value: Any) -> None:
            if value is None or bool(predicate(key, value)) == keep_if:
                forward(key, value)
            else:
                forward(key, None)

        return table_filter

    return factory


def _table_map_values(mapper: Callable[..., Any], with_key: bool) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = ops.forward_to(children)

        def table_map_values(key: Any, value: Any) -> None:
            if value is None:
                forward(key, None)
            else:
                forward(key, mapper(key, value) if with_key else mapper(value))

        return table_map_values

    return factory


def table_source_node(store_name: str | None) -> NodeFactory:
    """`builder.table(topic)`: each record is the new value of its key (null deletes it).

    As Kafka Streams' KTableSource: a record with a null key is dropped, whether
    the table is materialized or not. A materialized table forwards what its
    store writes through (at once, or at a cache flush).
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        metrics = task.metrics
        write = ops.forward_to(children)
        if store_name is not None:
            store = task.get_state_store(store_name)
            store.set_flush_listener(forward_at(task.record_context, write))
            write = store.put

        def table_source(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            write(key, value)

        return table_source

    return factory
