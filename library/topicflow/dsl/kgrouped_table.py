"""A table regrouped by `KTable.group_by`, and its aggregations: Kafka Streams' KGroupedTable.

`table.group_by(selector)` selects a new (key, value) for each row; `count`,
`reduce` and `aggregate` then keep one aggregate per new key, which follows
the table: an update subtracts the row's old value from its old group and adds
its new value to its new group (the nodes: `topicflow.dsl.table_aggregate`).

The selected pairs always travel through a repartition topic,
`{application_id}-{name}-repartition`, named from `Grouped` or else from the
store's name, read by a second sub-topology that holds the aggregate's store.
Names are generated in Kafka Streams' order (store, sink, source, aggregate),
so `describe()` matches Kafka's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl.changes import OldValues
from topicflow.dsl.kgrouped import store_spec
from topicflow.dsl.options import Grouped, Materialized, Named
from topicflow.dsl.table_aggregate import (
    TableAggregator,
    change_serde_of,
    count_adder,
    count_initializer,
    count_subtractor,
    reduce_aggregators,
    table_aggregate_node,
)
from topicflow.serdes import Serdes
from topicflow.topology.nodes import SinkNode
from topicflow.topology.topology import InternalTopic

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.ktable import KTable


class KGroupedTable:
    def __init__(self, graph: InternalStreamsBuilder, node_name: str, grouped: Grouped) -> None:
        """`node_name`: the select node (KTABLE-SELECT) whose pairs are aggregated."""
        self._graph = graph
        self._node = node_name
        self._grouped = grouped

    def count(
        self, materialized: Materialized | None = None, named: Named | str | None = None
    ) -> KTable:
        """The number of rows in each group (a Long; 0 once a group's rows all left)."""
        materialized = materialized or Materialized()
        if materialized.value_serde is None:
            materialized = materialized.with_value_serde(Serdes.Long())
        return self._aggregate(
            count_initializer,
            count_adder,
            count_subtractor,
            materialized,
            named,
            "KTABLE-AGGREGATE",
        )

    def reduce(
        self,
        adder: Callable[[Any, Any], Any],
        subtractor: Callable[[Any, Any], Any],
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        """`adder(aggregate, value)` for a row joining a group (its first value is the
        aggregate), `subtractor(aggregate, value)` for one leaving it."""
        initializer, add, subtract = reduce_aggregators(adder, subtractor)
        materialized = materialized or Materialized()
        if materialized.value_serde is None and self._grouped.value_serde is not None:
            materialized = materialized.with_value_serde(self._grouped.value_serde)
        return self._aggregate(initializer, add, subtract, materialized, named, "KTABLE-REDUCE")

    def aggregate(
        self,
        initializer: Callable[[], Any],
        adder: TableAggregator,
        subtractor: TableAggregator,
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        """`adder(key, value, aggregate)` for a row joining a group,
        `subtractor(key, value, aggregate)` for one leaving it."""
        # The aggregate's type is not the grouped values': without a serde in
        # `materialized` its store takes the default one, as in Kafka Streams.
        return self._aggregate(
            initializer,
            adder,
            subtractor,
            materialized or Materialized(),
            named,
            "KTABLE-AGGREGATE",
        )

    def _aggregate(
        self,
        initializer: Callable[[], Any],
        adder: TableAggregator,
        subtractor: TableAggregator,
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        graph = self._graph
        grouped = self._grouped
        # Kafka Streams' order: the store's name, then the sink's, the source's, the
        # aggregate's (KGroupedTableImpl.doAggregate).
        store = materialized.store_name or graph.node_name("KTABLE-AGGREGATE-STATE-STORE", None)
        name = named.name if isinstance(named, Named) else named
        sink = f"{name}-sink" if name is not None else graph.node_name("SINK", None)
        source = f"{name}-source" if name is not None else graph.node_name("SOURCE", None)
        aggregate = graph.node_name(kind, named)
        topic = f"{grouped.name or store}-repartition"
        value_serde = change_serde_of(grouped.value_serde)
        graph.topology.add_internal_topic(InternalTopic(topic, "repartition", None))
        graph.topology.add_node(
            SinkNode(sink, [self._node], topic, None, grouped.key_serde, value_serde)
        )
        graph.topology.add_source(
            source, topic, key_serde=grouped.key_serde, value_serde=value_serde
        )
        old_values = OldValues()
        graph.add_processor(
            aggregate,
            table_aggregate_node(store, initializer, adder, subtractor, old_values),
            source,
        )
        spec = store_spec(store, "key_value", materialized, grouped.key_serde, None)
        graph.topology.add_state_store(spec, aggregate)
        return graph.new_table(aggregate, store_name=store, old_values=old_values)
