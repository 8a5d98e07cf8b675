"""Session-windowed aggregations: `group_by_key().windowed_by(SessionWindows...).count()`.

Kafka Streams' SessionWindowedKStream and KStreamSessionWindowAggregate. Per
key, records whose timestamps are at most the inactivity gap apart belong to
one session [first timestamp, last timestamp] (both inclusive). A record at t:

1. finds the key's sessions that end at or after t - gap and start at or before
   t + gap, and merges them with [t, t]: start = the smallest start, end = the
   largest end; the aggregate is `merger(key, ...)` of theirs, from the initializer;
2. is late, dropped and counted in `late_records`, when that merged session ends
   before the close time, stream time - grace - gap (Kafka Streams' rule:
   `mergedWindow.end() < windowCloseTime`);
3. otherwise removes the merged sessions (unless the merged session is [t, t]
   itself), and puts the merged session with `aggregator(key, value, aggregate)`.

Results are keyed `Windowed(key, SessionWindow(start, end))`. Emitted on update
(the default), each removed session is forwarded as a tombstone
`(Windowed(key, old session), None)` before the merged session, when the cache
flushes, with the timestamp of the record that caused the change (what Kafka
Streams forwards with its cache enabled). With `suppress(Suppressed.until_window_closes())`
the aggregation emits on window close instead: a session is forwarded once, with
its end as timestamp, once its end is before stream time - grace - gap (Kafka
Streams' `EmitStrategy.onWindowClose()` rule for sessions), and is left in the
store, since a late-but-accepted record may still merge it into a later session
(as in Kafka Streams, which then emits the merged session too). A task that
takes over a partition emits the sessions that close after its first record: the
ones closed before were emitted by the previous owner before its last commit
(Kafka Streams keeps the last emitted close time in its commit metadata).

Through the cache, changes to one session between two flushes make one record:
a session created and merged away in between is never forwarded (nor its
tombstone), and a record inside a session (removed and put back, as Kafka does)
forwards one update.

`count()` merges by addition and `reduce()` with the reducer; `aggregate()` takes
a `merger(key, aggregate1, aggregate2)` like Kafka's `Merger`. Records with a null
key or value are dropped and counted in `dropped_records`, as this package's other
aggregations do (Kafka's session aggregation drops null keys only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl.aggregations import (
    Aggregator,
    CloseFrontier,
    Initializer,
    _forward_at,
    count_aggregator,
    forward_each_at,
)
from topicflow.dsl.ktable import KTable
from topicflow.dsl.operations import forward_to
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.windows import SessionWindow, SessionWindows, Windowed
from topicflow.errors import TopologyError
from topicflow.serdes import Serdes
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import Forward, NodeFactory, ProcessorNode, TaskContext

if TYPE_CHECKING:
    from topicflow.dsl.kgrouped import KGroupedStream

# merger(key, aggregate1, aggregate2) -> merged aggregate (Kafka's Merger)
Merger = Callable[[Any, Any, Any], Any]

_DAY_MS = 24 * 3600 * 1000


class SessionWindowedKStream:
    """A grouped stream cut into sessions of activity separated by the inactivity gap."""

    def __init__(self, grouped: KGroupedStream, windows: SessionWindows) -> None:
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
        builder = grouped._stream._builder
        store = materialized.store_name or builder.node_name(f"{kind}-STATE-STORE", None)
        windows = self._windows
        minimum = windows.gap_ms + windows.grace_ms
        retention = materialized.retention_ms or windows.retention_ms()
        if retention < minimum:
            raise TopologyError(
                f"store {store!r}: retention ({retention} ms) must be at least the inactivity "
                f"gap plus grace ({minimum} ms)"
            )
        if materialized.persistent:
            raise TopologyError(
                f"store {store!r}: persistent session stores are not supported yet; "
                "use Materialized.in_memory_store()"
            )
        parent = grouped.source_for_aggregation(store)
        name = builder.node_name(kind, named)
        spec = StoreSpec(
            name=store,
            kind="session",
            key_serde=materialized.key_serde or grouped.grouped.key_serde,
            value_serde=materialized.value_serde or grouped.grouped.value_serde,
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
        table = KTable(builder, name, store_name=store)

        def make_node(emit_on_close: bool) -> ProcessorNode:
            factory = session_aggregate_node(
                store, windows, initializer, aggregator, merger, emit_on_close
            )
            return ProcessorNode(name, factory, [parent])

        builder.topology.add_node(make_node(False))
        builder.topology.add_state_store(spec, name)
        table._switch_to_emit_final = lambda: builder.topology.replace_factory(
            name, make_node(True).factory
        )
        return table


def _sum_merger(_key: Any, aggregate1: Any, aggregate2: Any) -> Any:
    return aggregate1 + aggregate2


def _reduce_functions(
    reducer: Callable[[Any, Any], Any],
) -> tuple[Initializer, Aggregator, Merger]:
    """Kafka Streams' session reduce: the first value is the aggregate, then
    reducer(aggregate, value); two sessions merge as reducer(earlier merged, next)."""
    missing = object()

    def initializer() -> Any:
        return missing

    def aggregator(_key: Any, value: Any, aggregate: Any) -> Any:
        return value if aggregate is missing else reducer(aggregate, value)

    def merger(_key: Any, aggregate1: Any, aggregate2: Any) -> Any:
        if aggregate1 is missing:
            return aggregate2
        if aggregate2 is missing:
            return aggregate1
        return reducer(aggregate1, aggregate2)

    return initializer, aggregator, merger


def session_aggregate_node(
    store_name: str,
    windows: SessionWindows,
    initializer: Initializer,
    aggregator: Aggregator,
    merger: Merger,
    emit_on_window_close: bool,
) -> NodeFactory:
    gap, grace = windows.gap_ms, windows.grace_ms

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        store = task.get_state_store(store_name)
        rc = task.record_context
        forward = forward_to(children)
        metrics = task.metrics
        find_sessions, put, remove = store.find_sessions, store.put, store.remove
        observe = store.observe_stream_time
        if not emit_on_window_close:
            forward_update = _forward_at(rc, forward)

            def on_flush(key: Any, start: int, end: int, value: Any, timestamp: int) -> None:
                forward_update(Windowed(key, SessionWindow(start, end)), value, timestamp)

            store.set_flush_listener(on_flush)
        emitted = CloseFrontier()

        def emit_closed(close_time: int) -> None:
            """Forward, once, every session ending in [last close time, close_time)."""
            last = emitted.advance(close_time)
            if last is None:
                return
            closed = list(store.find_sessions_ending_between(last, close_time - 1))
            forward_each_at(
                rc,
                forward,
                (
                    (Windowed(key, SessionWindow(start, end)), value, end)
                    for key, start, end, value in closed
                ),
            )

        def aggregate(key: Any, value: Any) -> None:
            if key is None or value is None:
                metrics.dropped_records += 1
                return
            timestamp = rc.timestamp
            stream_time = task.stream_time
            close_time = stream_time - grace - gap
            if not emit_on_window_close:
                observe(stream_time)
            merged = list(find_sessions(key, timestamp - gap, timestamp + gap))
            start = end = timestamp
            agg = initializer()
            for session_start, session_end, session_value in merged:
                agg = merger(key, agg, session_value)
                start = min(start, session_start)
                end = max(end, session_end)
            if end < close_time:
                metrics.late_records += 1
            else:
                if start != timestamp or end != timestamp:
                    for session_start, session_end, _ in merged:
                        remove(key, session_start, session_end)
                put(key, start, end, aggregator(key, value, agg))
            if emit_on_window_close:
                # As Kafka Streams: emit after the record is applied (a session it merged
                # away is not emitted), then expire: expiry must not drop a closed session
                # before it is emitted, and it lags one ms because with the smallest
                # retention (gap + grace) a session ending at the close time would expire
                # (end <= stream time - retention) before it closes (end < close time).
                emit_closed(close_time)
                observe(stream_time - 1)

        return aggregate

    return factory
