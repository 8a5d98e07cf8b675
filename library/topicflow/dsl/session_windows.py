"""Session-windowed aggregations: `group_by_key().windowed_by(SessionWindows...).count()`.

Kafka Streams' SessionWindowedKStream: per key, records at most the inactivity gap
apart make one session, keyed `Windowed(key, SessionWindow(start, end))`. This is
the DSL's side, the store and the node it adds; how the node merges sessions and
when it emits them, as Kafka's KStreamSessionWindowAggregate, is
`topicflow.dsl.session_aggregate`.

`count()` merges by addition and `reduce()` with the reducer; `aggregate()` takes
a `merger(key, aggregate1, aggregate2)` like Kafka's `Merger`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl.aggregations import Aggregator, Initializer, count_aggregator
from topicflow.dsl.changes import EmitStrategy, OldValues
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.session_aggregate import Merger, session_aggregate_node
from topicflow.dsl.windows import SessionWindows
from topicflow.errors import TopologyError
from topicflow.serdes import Serde, Serdes
from topicflow.state.stores import StoreSpec

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kgrouped import KGroupedStream
    from topicflow.dsl.ktable import KTable

_DAY_MS = 24 * 3600 * 1000


class SessionWindowedKStream:
    """A grouped stream cut into sessions of activity separated by the inactivity gap."""

    def __init__(
        self, graph: InternalStreamsBuilder, grouped: KGroupedStream, windows: SessionWindows
    ) -> None:
        self._graph = graph
        self._grouped = grouped
        self._windows = windows

    def count(
        self, materialized: Materialized | None = None, named: Named | str | None = None
    ) -> KTable:
        materialized = materialized or Materialized()
        if materialized.value_serde is None:  # a count is a Long, as in Kafka Streams
            materialized = materialized.with_value_serde(Serdes.Long())
        return self._aggregate(
            lambda: 0, count_aggregator, _sum_merger, materialized, named, "AGGREGATE"
        )

    def reduce(
        self,
        reducer: Callable[[Any, Any], Any],
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        initializer, aggregator, merger = _reduce_functions(reducer)
        return self._aggregate(
            initializer, aggregator, merger, materialized or Materialized(), named, "REDUCE"
        )

    def aggregate(
        self,
        initializer: Callable[[], Any],
        aggregator: Callable[[Any, Any, Any], Any],
        merger: Merger,
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        return self._aggregate(
            initializer, aggregator, merger, materialized or Materialized(), named, "AGGREGATE"
        )

    def _aggregate(
        self,
        initializer: Initializer,
        aggregator: Aggregator,
        merger: Merger,
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        grouped = self._grouped
        graph = self._graph
        store = materialized.store_name or graph.node_name(f"{kind}-STATE-STORE", None)
        windows = self._windows
        spec = session_store_spec(
            store, windows, materialized, grouped.grouped.key_serde, grouped.grouped.value_serde
        )
        # Named before the repartition topic, as in Kafka Streams.
        name = graph.node_name(kind, named)
        parent = grouped.source_for_aggregation(store)
        old_values = OldValues()
        emit = EmitStrategy()
        factory = session_aggregate_node(
            store, windows, initializer, aggregator, merger, emit, old_values
        )
        graph.add_processor(name, factory, parent)
        graph.topology.add_state_store(spec, name)
        return graph.new_table(name, store_name=store, old_values=old_values, emit=emit)


def session_store_spec(
    name: str,
    windows: SessionWindows,
    materialized: Materialized,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
) -> StoreSpec:
    """The session store of a session aggregation; its retention checked."""
    minimum = windows.gap_ms + windows.grace_ms
    # Kafka Streams' default session store retention is gap + grace, no more
    # (SessionWindowedKStreamImpl): it decides which old sessions a record can merge.
    retention = materialized.retention_ms or minimum
    if retention < minimum:
        raise TopologyError(
            f"store {name!r}: retention ({retention} ms) must be at least the inactivity "
            f"gap plus grace ({minimum} ms)"
        )
    if materialized.persistent:
        raise TopologyError(
            f"store {name!r}: persistent session stores are not supported yet; "
            "use Materialized.in_memory_store()"
        )
    return StoreSpec(
        name=name,
        kind="session",
        key_serde=materialized.key_serde or key_serde,
        value_serde=materialized.value_serde or value_serde,
        persistent=False,
        logging=materialized.logging,
        caching=materialized.caching,
        retention_ms=retention,
        # Kafka Streams keeps a windowed changelog one day past the store's retention.
        changelog_config={
            "cleanup.policy": "compact,delete",
            "retention.ms": str(retention + _DAY_MS),
        },
    )


def _sum_merger(_key: Any, aggregate1: Any, aggregate2: Any) -> Any:
    return aggregate1 + aggregate2


def _reduce_functions(
    reducer: Callable[[Any, Any], Any],
) -> tuple[Initializer, Aggregator, Merger]:
    """Kafka Streams' session reduce (SessionWindowedKStreamImpl): the aggregate starts
    as None; a value makes `value if aggregate is None else reducer(aggregate, value)`,
    so a null value starting a session makes a None aggregate (a tombstone); two
    sessions merge as the aggregator would, the later aggregate as the value."""

    def initializer() -> Any:
        return None

    def aggregator(_key: Any, value: Any, aggregate: Any) -> Any:
        return value if aggregate is None else reducer(aggregate, value)

    def merger(_key: Any, aggregate1: Any, aggregate2: Any) -> Any:
        return aggregate2 if aggregate1 is None else reducer(aggregate1, aggregate2)

    return initializer, aggregator, merger
