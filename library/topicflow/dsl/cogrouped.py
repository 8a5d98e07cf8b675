"""Cogrouped streams: several grouped streams aggregated into one table (Kafka Streams'
KIP-150, CogroupedKStream).

    totals = (
        clicks.group_by_key().cogroup(lambda k, click, total: total + 1)
        .cogroup(purchases.group_by_key(), lambda k, purchase, total: total + purchase.amount)
        .aggregate(lambda: 0)
    )

Each grouped stream keeps its own aggregator; all share one initializer and one
store. As Kafka Streams' CogroupedStreamAggregateBuilder builds it: each grouped
stream whose key may have changed goes through its own repartition topic (named
from its `Grouped`, else from the store); then one aggregate node per stream
(`COGROUPKSTREAM-AGGREGATE-...`, the single-stream aggregation's node) writes to
the shared store, and a pass-through node (`COGROUPKSTREAM-MERGE-...`) below them
all is the table. A record of any stream updates the aggregate and the table
emits it, by the rules of the aggregation used (per key, time windows, sliding
windows or sessions).

The windowed forms emit on every update, as Kafka's: `suppress` is not supported
on their tables.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import topicflow.dsl.aggregations as agg
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.kgrouped import store_spec, time_window_store_spec
from topicflow.dsl.operations import pass_through_node
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.session_aggregate import Merger, session_aggregate_node
from topicflow.dsl.session_windows import session_store_spec
from topicflow.dsl.sliding_aggregate import shared_window_starts, sliding_aggregate_node
from topicflow.dsl.sliding_windows import sliding_store_spec
from topicflow.dsl.windows import SessionWindows, SlidingWindows, TimeWindows
from topicflow.errors import TopologyError
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import NodeFactory

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kgrouped import KGroupedStream
    from topicflow.dsl.ktable import KTable

# The node of one grouped stream, given its aggregator and the table's old-values cell.
_NodeFor = Callable[[agg.Aggregator, OldValues], NodeFactory]


class CogroupedKStream:
    """Grouped streams, each with its aggregator, to aggregate into one table."""

    def __init__(
        self, graph: InternalStreamsBuilder, grouped: KGroupedStream, aggregator: agg.Aggregator
    ) -> None:
        self._graph = graph
        # In the order cogrouped: the nodes are named in it. Cogrouping a stream
        # again replaces its aggregator, as Kafka Streams' map of them does.
        self._groups: dict[KGroupedStream, agg.Aggregator] = {grouped: aggregator}

    def cogroup(self, grouped: KGroupedStream, aggregator: agg.Aggregator) -> CogroupedKStream:
        """Add `grouped`, aggregated by `aggregator(key, value, aggregate)`; returns this."""
        self._groups[grouped] = aggregator
        return self

    def aggregate(
        self,
        initializer: agg.Initializer,
        named: Named | str | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        """The aggregate of every key over all the streams, starting from `initializer()`."""
        materialized = materialized or Materialized()
        store = self._store_name(materialized)
        spec = store_spec(store, "key_value", materialized, self._key_serde, None)

        def node_for(aggregator: agg.Aggregator, old_values: OldValues) -> NodeFactory:
            return agg.aggregate_node(store, initializer, aggregator, old_values)

        return self._build(store, spec, node_for, named)

    @overload
    def windowed_by(
        self, windows: TimeWindows | SlidingWindows
    ) -> TimeWindowedCogroupedKStream: ...
    @overload
    def windowed_by(self, windows: SessionWindows) -> SessionWindowedCogroupedKStream: ...
    def windowed_by(
        self, windows: TimeWindows | SlidingWindows | SessionWindows
    ) -> TimeWindowedCogroupedKStream | SessionWindowedCogroupedKStream:
        if isinstance(windows, SessionWindows):
            return SessionWindowedCogroupedKStream(self, windows)
        if not isinstance(windows, TimeWindows | SlidingWindows):
            raise TopologyError(
                f"windowed_by takes TimeWindows, SlidingWindows or SessionWindows, "
                f"not {type(windows).__name__}"
            )
        return TimeWindowedCogroupedKStream(self, windows)

    @property
    def _key_serde(self) -> Any:
        """The store's key serde unless `Materialized` names one: the first stream's."""
        return next(iter(self._groups)).grouped.key_serde

    def _store_name(self, materialized: Materialized) -> str:
        # Named first, before any repartition topic or node (Kafka's MaterializedInternal).
        return materialized.store_name or self._graph.node_name(
            "COGROUPKSTREAM-AGGREGATE-STATE-STORE", None
        )

    def _build(
        self,
        store: str,
        spec: StoreSpec,
        node_for: _NodeFor,
        named: Named | str | None,
        windows: TimeWindows | None = None,
    ) -> KTable:
        """Kafka Streams' CogroupedStreamAggregateBuilder.build: the repartition topics,
        then one aggregate node per stream on the shared store, then the merge node."""
        graph = self._graph
        parents = [grouped.source_for_aggregation(store) for grouped in self._groups]
        # The nodes share one cell: a table below asking for old values asks them all.
        old_values = OldValues()
        names = []
        for i, (parent, aggregator) in enumerate(zip(parents, self._groups.values(), strict=True)):
            name = self._node_name("COGROUPKSTREAM-AGGREGATE", named, f"-cogroup-agg-{i}")
            graph.add_processor(name, node_for(aggregator, old_values), parent)
            names.append(name)
        graph.topology.add_state_store(spec, *names)
        merge = self._node_name("COGROUPKSTREAM-MERGE", named, "-cogroup-merge")
        graph.add_processor(merge, pass_through_node(), *names)
        return graph.new_table(merge, store_name=store, windows=windows, old_values=old_values)

    def _node_name(self, kind: str, named: Named | str | None, suffix: str) -> str:
        """`named` plus `suffix`, else the generated name; generated either way, as Kafka
        Streams does, so that the names after it do not depend on `named`."""
        generated = self._graph.node_name(kind, None)
        if named is None:
            return generated
        return (named.name if isinstance(named, Named) else named) + suffix


class TimeWindowedCogroupedKStream:
    """Cogrouped streams aggregated per key and time window: tumbling, hopping or sliding."""

    def __init__(self, streams: CogroupedKStream, windows: TimeWindows | SlidingWindows) -> None:
        self._streams = streams
        self._windows = windows

    def aggregate(
        self,
        initializer: agg.Initializer,
        named: Named | str | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        materialized = materialized or Materialized()
        streams = self._streams
        store = streams._store_name(materialized)
        windows = self._windows
        key_serde = streams._key_serde
        if materialized.retention_ms is None:
            # Kafka Streams' default retention (its Window- and SlidingWindowStoreMaterializer):
            # what a record can still update, no more. A single stream's aggregation
            # cannot tell (a window expires once late), but here one stream's records
            # expire windows that another's, behind in time, would still update.
            materialized = materialized.with_retention(
                windows.size_ms + windows.grace_ms
                if isinstance(windows, TimeWindows)
                else 2 * windows.time_difference_ms + windows.grace_ms
            )
        if isinstance(windows, SlidingWindows):
            sliding = windows
            spec = sliding_store_spec(store, sliding, materialized, key_serde, None)
            # The nodes must see each other's windows.
            window_starts = shared_window_starts()

            def sliding_node(aggregator: agg.Aggregator, old_values: OldValues) -> NodeFactory:
                return sliding_aggregate_node(
                    store,
                    sliding,
                    initializer,
                    aggregator,
                    EmitStrategy(),
                    old_values,
                    window_starts,
                )

            return streams._build(store, spec, sliding_node, named)
        spec = time_window_store_spec(store, windows, materialized, key_serde, None)
        time_windows = windows

        def window_node(aggregator: agg.Aggregator, old_values: OldValues) -> NodeFactory:
            return agg.window_aggregate_node(
                store, time_windows, initializer, aggregator, EmitStrategy(), old_values
            )

        return streams._build(store, spec, window_node, named, windows)


class SessionWindowedCogroupedKStream:
    """Cogrouped streams aggregated per key and session."""

    def __init__(self, streams: CogroupedKStream, windows: SessionWindows) -> None:
        self._streams = streams
        self._windows = windows

    def aggregate(
        self,
        initializer: agg.Initializer,
        session_merger: Merger,
        named: Named | str | None = None,
        materialized: Materialized | None = None,
    ) -> KTable:
        """`session_merger(key, aggregate1, aggregate2)` merges two sessions a record joins."""
        materialized = materialized or Materialized()
        streams = self._streams
        store = streams._store_name(materialized)
        windows = self._windows
        spec = session_store_spec(store, windows, materialized, streams._key_serde, None)

        def node_for(aggregator: agg.Aggregator, old_values: OldValues) -> NodeFactory:
            return session_aggregate_node(
                store, windows, initializer, aggregator, session_merger, EmitStrategy(), old_values
            )

        return streams._build(store, spec, node_for, named)
