"""Sliding-window aggregations: `group_by_key().windowed_by(SlidingWindows...).count()`.

Kafka Streams' sliding windows (KIP-450): a window is `[start, start + difference]`,
both ends inclusive, keyed `Windowed(key, TimeWindow(start, start + difference))`.
This is the DSL's side, the store and the node it adds; the node's algorithm,
Kafka's rule for rule, is `topicflow.dsl.sliding_aggregate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from topicflow.dsl.aggregations import Aggregations, Aggregator, Initializer
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.kgrouped import store_spec
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.sliding_aggregate import sliding_aggregate_node
from topicflow.dsl.windows import SlidingWindows
from topicflow.errors import TopologyError
from topicflow.serdes import Serde
from topicflow.state.stores import StoreSpec

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kgrouped import KGroupedStream
    from topicflow.dsl.ktable import KTable


class SlidingWindowedKStream(Aggregations):
    """A grouped stream aggregated over sliding windows (Kafka's TimeWindowedKStream for
    SlidingWindows)."""

    def __init__(
        self, graph: InternalStreamsBuilder, grouped: KGroupedStream, windows: SlidingWindows
    ) -> None:
        self._graph = graph
        self._grouped = grouped
        self._windows = windows

    def _aggregate(
        self,
        initializer: Initializer,
        aggregator: Aggregator,
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        grouped = self._grouped
        graph = self._graph
        store = materialized.store_name or graph.node_name(f"{kind}-STATE-STORE", None)
        windows = self._windows
        spec = sliding_store_spec(
            store, windows, materialized, grouped.grouped.key_serde, grouped.grouped.value_serde
        )
        # Named before the repartition topic, as in Kafka Streams.
        name = graph.node_name(kind, named)
        parent = grouped.source_for_aggregation(store)
        old_values = OldValues()
        emit = EmitStrategy()
        factory = sliding_aggregate_node(store, windows, initializer, aggregator, emit, old_values)
        graph.add_processor(name, factory, parent)
        graph.topology.add_state_store(spec, name)
        return graph.new_table(name, store_name=store, old_values=old_values, emit=emit)


def sliding_store_spec(
    name: str,
    windows: SlidingWindows,
    materialized: Materialized,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
) -> StoreSpec:
    """The window store of a sliding aggregation; its retention checked."""
    difference = windows.time_difference_ms
    minimum = 2 * difference + windows.grace_ms
    retention = materialized.retention_ms or windows.retention_ms()
    if retention < minimum:
        raise TopologyError(
            f"store {name!r}: retention ({retention} ms) must be at least twice the time "
            f"difference plus grace ({minimum} ms)"
        )
    # Kafka's TimestampedWindowStore: the algorithm reads each window's largest
    # record timestamp.
    return store_spec(name, "window", materialized, key_serde, value_serde, retention, difference)
