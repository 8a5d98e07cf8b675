"""Grouped streams and their aggregations: `group_by(...).windowed_by(...).count(...)`.

Grouping after an operation that may have changed the key (`select_key`,
`map`, `flat_map`, `group_by`, `process`) writes the records through a
repartition topic `{application_id}-{name}-repartition`, partitioned by the
new key, so that every key is aggregated by exactly one task however many
instances run. The name comes from `Grouped`, else from the store's name, as
in Kafka Streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

import topicflow.dsl.aggregations as agg
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.options import Grouped, Materialized, Named
from topicflow.dsl.windows import SessionWindows, SlidingWindows, TimeWindows
from topicflow.errors import TopologyError
from topicflow.serdes import Serde
from topicflow.state.stores import StoreSpec

if TYPE_CHECKING:
    from topicflow.dsl.cogrouped import CogroupedKStream
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.ktable import KTable
    from topicflow.dsl.session_windows import SessionWindowedKStream
    from topicflow.dsl.sliding_windows import SlidingWindowedKStream


class KGroupedStream(agg.Aggregations):
    def __init__(
        self, graph: InternalStreamsBuilder, node_name: str, key_changed: bool, grouped: Grouped
    ) -> None:
        """`node_name`: the node whose records are grouped; `key_changed`: whether an
        operation above may have changed their keys (then they are repartitioned)."""
        self._graph = graph
        self._node = node_name
        self._key_changed = key_changed
        self._grouped = grouped

    @overload
    def windowed_by(self, windows: TimeWindows) -> TimeWindowedKStream: ...
    @overload
    def windowed_by(self, windows: SlidingWindows) -> SlidingWindowedKStream: ...
    @overload
    def windowed_by(self, windows: SessionWindows) -> SessionWindowedKStream: ...
    def windowed_by(
        self, windows: TimeWindows | SlidingWindows | SessionWindows
    ) -> TimeWindowedKStream | SlidingWindowedKStream | SessionWindowedKStream:
        if isinstance(windows, SessionWindows):
            return self._graph.new_session_windowed_stream(self, windows)
        if isinstance(windows, SlidingWindows):
            return self._graph.new_sliding_windowed_stream(self, windows)
        if not isinstance(windows, TimeWindows):
            raise TopologyError(
                f"windowed_by takes TimeWindows, SlidingWindows or SessionWindows, "
                f"not {type(windows).__name__}"
            )
        return self._graph.new_time_windowed_stream(self, windows)

    def _aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        graph = self._graph
        store = materialized.store_name or graph.node_name(f"{kind}-STATE-STORE", None)
        # Named before the repartition topic, as in Kafka Streams.
        name = graph.node_name(kind, named)
        parent = self.source_for_aggregation(store)
        spec = store_spec(
            store, "key_value", materialized, self._grouped.key_serde, self._grouped.value_serde
        )
        old_values = OldValues()
        graph.add_processor(
            name, agg.aggregate_node(store, initializer, aggregator, old_values), parent
        )
        graph.topology.add_state_store(spec, name)
        return graph.new_table(name, store_name=store, old_values=old_values)

    def source_for_aggregation(self, store_name: str) -> str:
        """The node aggregations hang from: the stream itself, or a repartition topic's source."""
        if not self._key_changed:
            return self._node
        base = self._grouped.name or store_name
        return self._graph.through_repartition_topic(
            self._node,
            base,
            self._grouped.key_serde,
            self._grouped.value_serde,
            None,
            drop_null_keys=True,
        )

    @property
    def grouped(self) -> Grouped:
        return self._grouped

    def cogroup(self, aggregator: Callable[[Any, Any, Any], Any]) -> CogroupedKStream:
        """Aggregate this stream with others into one table (Kafka Streams' KIP-150): this
        one by `aggregator(key, value, aggregate)`; add others with `.cogroup(...)`."""
        return self._graph.new_cogrouped_stream(self, aggregator)


class TimeWindowedKStream(agg.Aggregations):
    """A grouped stream cut into fixed-size windows, tumbling or hopping."""

    def __init__(
        self, graph: InternalStreamsBuilder, grouped: KGroupedStream, windows: TimeWindows
    ) -> None:
        self._graph = graph
        self._grouped = grouped
        self._windows = windows

    def _aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        graph = self._graph
        store = materialized.store_name or graph.node_name(f"{kind}-STATE-STORE", None)
        # Named before the repartition topic, as in Kafka Streams.
        name = graph.node_name(kind, named)
        parent = self._grouped.source_for_aggregation(store)
        windows = self._windows
        grouped = self._grouped.grouped
        spec = time_window_store_spec(
            store, windows, materialized, grouped.key_serde, grouped.value_serde
        )
        old_values = OldValues()
        emit = EmitStrategy()
        factory = agg.window_aggregate_node(
            store, windows, initializer, aggregator, emit, old_values
        )
        graph.add_processor(name, factory, parent)
        graph.topology.add_state_store(spec, name)
        return graph.new_table(
            name, store_name=store, windows=windows, old_values=old_values, emit=emit
        )


def time_window_store_spec(
    name: str,
    windows: TimeWindows,
    materialized: Materialized,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
) -> StoreSpec:
    """The window store of a tumbling or hopping aggregation; its retention checked."""
    retention = materialized.retention_ms or windows.retention_ms()
    if retention < windows.size_ms + windows.grace_ms:
        raise TopologyError(
            f"store {name!r}: retention ({retention} ms) must be at least window size "
            f"plus grace ({windows.size_ms + windows.grace_ms} ms)"
        )
    return store_spec(
        name, "window", materialized, key_serde, value_serde, retention, windows.size_ms
    )


def store_spec(
    name: str,
    kind: Any,
    materialized: Materialized,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
    retention_ms: int = 0,
    window_size_ms: int = 0,
) -> StoreSpec:
    """An aggregation's timestamped store: `materialized`'s serdes, else the given ones."""
    changelog_config = {"cleanup.policy": "compact"}
    if kind == "window":
        # Kafka Streams keeps a windowed changelog one day past the store's retention.
        changelog_config = {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(retention_ms + 24 * 3600 * 1000),
        }
    return StoreSpec(
        name=name,
        kind=kind,
        key_serde=materialized.key_serde or key_serde,
        value_serde=materialized.value_serde or value_serde,
        persistent=materialized.persistent,
        logging=materialized.logging,
        caching=materialized.caching,
        timestamped=True,
        retention_ms=retention_ms,
        window_size_ms=window_size_ms,
        changelog_config=changelog_config,
    )
