"""Aggregation nodes: count, reduce, aggregate; per key, or per key and time window.

Each node reads and writes its store through the record cache. What it
forwards downstream depends on the emission mode:

- on update (Kafka Streams' default): the store's flush listener forwards the
  latest value of each updated key when the cache flushes (every commit, or
  when full; at once without a cache);
- on window close (`suppress(Suppressed.until_window_closes())`): nothing on
  update; once stream time passes a window's end plus grace, every key of that
  window is forwarded once and the window is dropped from the store, since no
  later record may change it.

Records with a null key are dropped and counted, as are records with a null
value in aggregations that are not windowed (Kafka Streams does the same:
windowed aggregations take a null value); so are records for windows already
closed (late records).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl.changes import EmitStrategy, OldValues, forward_at, forward_each_at
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.suppress import time_windowed_key
from topicflow.dsl.windows import TimeWindow, TimeWindows, Windowed
from topicflow.serdes import Serdes
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

if TYPE_CHECKING:
    from topicflow.dsl.ktable import KTable

# aggregator(key, value, aggregate) -> new aggregate
Aggregator = Callable[[Any, Any, Any], Any]
Initializer = Callable[[], Any]


class Aggregations:
    """`count`, `reduce` and `aggregate`, in terms of one `_aggregate` each stream defines.

    Shared by grouped streams and their time- and sliding-windowed forms.
    """

    def count(
        self, materialized: Materialized | None = None, named: Named | str | None = None
    ) -> KTable:
        materialized = materialized or Materialized()
        if materialized.value_serde is None:
            # A count is a Long whatever the default value serde, as in Kafka Streams.
            materialized = materialized.with_value_serde(Serdes.Long())
        return self._aggregate(_zero, count_aggregator, materialized, named, "AGGREGATE")

    def reduce(
        self,
        reducer: Callable[[Any, Any], Any],
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        initializer, aggregator = reducer_aggregator(reducer)
        return self._aggregate(
            initializer, aggregator, materialized or Materialized(), named, "REDUCE"
        )

    def aggregate(
        self,
        initializer: Initializer,
        aggregator: Aggregator,
        materialized: Materialized | None = None,
        named: Named | str | None = None,
    ) -> KTable:
        return self._aggregate(
            initializer, aggregator, materialized or Materialized(), named, "AGGREGATE"
        )

    def _aggregate(
        self,
        initializer: Initializer,
        aggregator: Aggregator,
        materialized: Materialized,
        named: Named | str | None,
        kind: str,
    ) -> KTable:
        raise NotImplementedError


def _zero() -> int:
    return 0


def count_aggregator(_key: Any, _value: Any, aggregate: int) -> int:
    return aggregate + 1


# A reduce's initial aggregate: none yet (Kafka's reduce initializer gives null).
_NO_AGGREGATE: Any = object()


def reducer_aggregator(reducer: Callable[[Any, Any], Any]) -> tuple[Initializer, Aggregator]:
    """Kafka Streams' reduce: the first value is the aggregate, then reducer(aggregate, value)."""

    def initializer() -> Any:
        return _NO_AGGREGATE

    def aggregate(_key: Any, value: Any, aggregate: Any) -> Any:
        return value if aggregate is _NO_AGGREGATE else reducer(aggregate, value)

    return initializer, aggregate


def old_value_of(aggregate: Any) -> Any:
    """The old value Kafka Streams forwards with an update when no cache sits between:
    the aggregate the record was added to. For a key's first record that is the
    initializer's result (KStreamAggregate and the windowed aggregations replace a
    missing aggregate by it before forwarding), and null for a reduce."""
    return None if aggregate is _NO_AGGREGATE else aggregate


class CloseFrontier:
    """The close time up to which windows (or sessions) were emitted on window close.

    Unknown until a task's first record: what closed before the task started here
    (restored from the changelog) was emitted by its previous owner.
    """

    __slots__ = ("close_time",)

    def __init__(self) -> None:
        self.close_time: int | None = None

    def advance(self, close_time: int) -> int | None:
        """Move to `close_time`; the previous close time if there is a new range to emit."""
        last = self.close_time
        if last is not None and close_time <= last:
            return None
        self.close_time = close_time
        return last


def aggregate_node(
    store_name: str, initializer: Initializer, aggregator: Aggregator, old_values: OldValues
) -> NodeFactory:
    """Kafka Streams' KStreamAggregate (and KStreamReduce, through `reducer_aggregator`)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        store = task.get_state_store(store_name)
        store.set_flush_listener(forward_at(task.record_context, forward_to(children)))
        send_old = store.send_old_values = old_values.sent
        get, put = store.get_with_timestamp, store.put
        metrics = task.metrics
        rc = task.record_context

        def aggregate(key: Any, value: Any) -> None:
            # KStreamAggregate skips a null key or a null value.
            if key is None or value is None:
                metrics.dropped_records += 1
                return
            # Idempotent state, replaying after a crash: already in the aggregate?
            if (
                store.replay_stamps is not None
                and rc.message is not None
                and store.replayed(key, rc.message.offset())
            ):
                metrics.replayed_updates_skipped += 1
                return
            # The result's timestamp is the latest of the records aggregated
            # (timestamped stores, KIP-258): max(record, previous aggregate).
            timestamp = rc.timestamp
            old = get(key)
            if old is None:
                initial = initializer()
                put(
                    key,
                    aggregator(key, value, initial),
                    timestamp,
                    old_value_of(initial) if send_old else None,
                )
            else:
                put(
                    key,
                    aggregator(key, value, old[0]),
                    timestamp if timestamp > old[1] else old[1],
                    old[0],
                )

        return aggregate

    return factory


def window_aggregate_node(
    store_name: str,
    windows: TimeWindows,
    initializer: Initializer,
    aggregator: Aggregator,
    emit: EmitStrategy,
    old_values: OldValues,
) -> NodeFactory:
    """Kafka Streams' KStreamWindowAggregate, tumbling or hopping.

    Lateness is decided by the time this processor has observed (the latest
    timestamp of the records it took), not the task's stream time: a record
    it skips for its null key does not move it. A null value is aggregated
    (Kafka 4.1 skips only a null key in windowed aggregations).
    """
    size, advance, grace = windows.size_ms, windows.advance_ms, windows.grace_ms
    tumbling = advance == size

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        emit_on_window_close = emit.on_window_close  # set by suppress() or not
        store = task.get_state_store(store_name)
        rc = task.record_context
        forward = forward_to(children)
        metrics = task.metrics
        fetch, put = store.fetch_with_timestamp, store.put
        observe = store.observe_stream_time
        send_old = store.send_old_values = old_values.sent
        if not emit_on_window_close:
            forward_update = forward_at(rc, forward)

            def on_flush(key: Any, start: int, value: Any, timestamp: int, old: Any) -> None:
                forward_update(
                    Windowed(key, TimeWindow(start, start + size)), value, timestamp, old
                )

            store.set_flush_listener(on_flush)
        # Window end up to which final results were emitted (emit on window close).
        emitted = _EmitFrontier(size, advance)
        serialize_key = store.serialize_key

        def emit_closed(close_time: int) -> None:
            """Forward, once, every window whose end is at or before `close_time`.

            As Kafka Streams' suppression buffer emits them: by window end, then
            by serialized windowed key, each with its aggregate's timestamp.
            """
            first_start = emitted.close_time - size + 1 if emitted.close_time >= 0 else 0
            last_start = close_time - size
            closed = sorted(
                store.fetch_all_with_timestamps(first_start, last_start),
                key=lambda found: (
                    found[1],
                    time_windowed_key(serialize_key(found[0]) or b"", found[1]),
                ),
            )
            forward_each_at(
                rc,
                forward,
                (
                    (Windowed(key, TimeWindow(start, start + size)), entry[0], entry[1])
                    for key, start, entry in closed
                ),
            )
            # A closed window takes no more records: drop it (nothing is forwarded:
            # in this mode the store has no flush listener).
            for key, start, _entry in closed:
                put(key, None, start)
            emitted.advance_to(close_time)

        # The latest timestamp this processor has taken (Kafka's observedStreamTime).
        observed = -1
        counting = aggregator is count_aggregator

        def aggregate(key: Any, value: Any) -> None:
            nonlocal observed
            if key is None:
                metrics.dropped_records += 1
                return
            timestamp = rc.timestamp
            moved = timestamp > observed
            if moved:
                observed = timestamp
            close_time = observed - grace
            # Emit what closed before expiring anything: with retention = size +
            # grace a window expires the moment it closes.
            if emit_on_window_close and close_time >= emitted.next_close:
                emit_closed(close_time)
            if moved and emit_on_window_close:
                # Emitting on update, the store's time is the latest window start
                # written (each put moves it), as Kafka's window stores keep it.
                observe(timestamp)
            # Idempotent state, replaying after a crash: the input offset, to skip
            # windows whose aggregate already holds this record.
            replay = (
                rc.message.offset()
                if store.replay_stamps is not None and rc.message is not None
                else None
            )
            if tumbling:
                start = timestamp - timestamp % size
                if start + size <= close_time:
                    metrics.late_records += 1
                    return
                if replay is not None and store.replayed(key, start, replay):
                    metrics.replayed_updates_skipped += 1
                    return
                old = fetch(key, start)
                if old is None:
                    if counting:
                        put(key, 1, start, timestamp, 0 if send_old else None)
                    else:
                        initial = initializer()
                        put(
                            key,
                            aggregator(key, value, initial),
                            start,
                            timestamp,
                            old_value_of(initial) if send_old else None,
                        )
                else:
                    new = old[0] + 1 if counting else aggregator(key, value, old[0])
                    put(key, new, start, timestamp if timestamp > old[1] else old[1], old[0])
                return
            accepted = False
            for start in windows.windows_for(timestamp):
                if start + size <= close_time:
                    continue
                accepted = True
                if replay is not None and store.replayed(key, start, replay):
                    metrics.replayed_updates_skipped += 1
                    continue
                old = fetch(key, start)
                if old is None:
                    initial = initializer()
                    put(
                        key,
                        aggregator(key, value, initial),
                        start,
                        timestamp,
                        old_value_of(initial) if send_old else None,
                    )
                else:
                    put(
                        key,
                        aggregator(key, value, old[0]),
                        start,
                        timestamp if timestamp > old[1] else old[1],
                        old[0],
                    )
            if not accepted:
                metrics.late_records += 1

        return aggregate

    return factory


class _EmitFrontier:
    """The close time up to which windows were emitted, and the next window end after it."""

    __slots__ = ("_advance", "_size", "close_time", "next_close")

    def __init__(self, size: int, advance: int) -> None:
        self._size = size
        self._advance = advance
        self.close_time = -1
        # Nothing emitted yet: the first emission happens at the first window end,
        # and scans from the oldest window the store holds (after a restore, too).
        self.next_close = 0

    def advance_to(self, close_time: int) -> None:
        self.close_time = close_time
        # Window ends are start + size with start a multiple of advance.
        last_start = close_time - self._size
        next_start = (last_start // self._advance + 1) * self._advance
        self.next_close = next_start + self._size
