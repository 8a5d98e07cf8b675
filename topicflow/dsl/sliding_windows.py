"""Sliding-window aggregations: `group_by_key().windowed_by(SlidingWindows...).count()`.

Kafka Streams' sliding windows (KIP-450, KStreamSlidingWindowAggregate). A
window is `[start, start + difference]`, both ends INCLUSIVE; its key is
`Windowed(key, TimeWindow(start, start + difference))`, so for these windows
`TimeWindow.end` is the last millisecond in the window, not one past it.

Windows exist only where records make them. For the records of a key with
timestamps T (all accepted), the windows are:

- each record's left window [t - difference, t] (a record earlier than the
  difference goes into the window [0, difference] instead, as in Kafka Streams:
  no window starts before 0);
- each record's right window [t + 1, t + 1 + difference], when another record
  of the key falls into it (a record later than t by at most difference + 1);

and each holds the aggregate of the records whose timestamps it contains, in
the order they arrived. Two records exactly `difference` apart share a window.

A new record at t updates every window that contains it, creates its left
window (from the window holding exactly the records in [t - difference, t)),
its right window (copied from the window holding exactly the records in
(t, t + 1 + difference], when there is one), and the right window of the
record just before it, if t falls in that one: Kafka Streams' algorithm. Kafka
finds those records through the largest record timestamp kept with each
window's value; here the values stay plain aggregates, and a second window store,
`{store}-record-times` (one entry per distinct record timestamp of each key,
same retention, logged too), tells where the records are. A task reads that
store into memory at its first record (after any restore) and keeps both in step.

Late records, with closeTime = stream time - grace (Kafka Streams' rules):
- a record with t + 1 + difference <= closeTime is dropped;
- otherwise it skips the windows that end before closeTime (the right window it
  may create ends after closeTime);
- a record that changed no window at all is counted in `late_records` (Kafka
  Streams counts each skipped window in its dropped-records sensor instead).

Updates are forwarded when the cache flushes (emit on update), with the largest
record timestamp in the window, as in Kafka Streams. With
`suppress(Suppressed.until_window_closes())` each window is forwarded once
instead, when its end is before stream time - grace (Kafka Streams'
`EmitStrategy.onWindowClose()` rule for sliding windows), and stays in the store
until retention drops it (it may still be copied into a new window). A task that
takes over a partition emits the windows that close after its first record: the
ones closed before were emitted by the previous owner before its last commit
(Kafka Streams keeps the last emitted close time in its commit metadata).
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING, Any

from topicflow.dsl.aggregations import (
    Aggregations,
    Aggregator,
    CloseFrontier,
    Initializer,
    _forward_at,
    forward_each_at,
)
from topicflow.dsl.ktable import KTable
from topicflow.dsl.operations import forward_to
from topicflow.dsl.options import Materialized, Named
from topicflow.dsl.windows import SlidingWindows, TimeWindow, Windowed
from topicflow.errors import TopologyError
from topicflow.serdes import Serdes
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import Forward, NodeFactory, ProcessorNode, TaskContext

if TYPE_CHECKING:
    from topicflow.dsl.kgrouped import KGroupedStream

_DAY_MS = 24 * 3600 * 1000


def record_times_store_name(store_name: str) -> str:
    """The store of the record timestamps behind the sliding-window store `store_name`."""
    return f"{store_name}-record-times"


class SlidingWindowedKStream(Aggregations):
    """A grouped stream aggregated over sliding windows (Kafka's TimeWindowedKStream for
    SlidingWindows)."""

    def __init__(self, grouped: KGroupedStream, windows: SlidingWindows) -> None:
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
        builder = grouped._stream._builder
        store = materialized.store_name or builder.node_name(f"{kind}-STATE-STORE", None)
        windows = self._windows
        difference = windows.time_difference_ms
        minimum = 2 * difference + windows.grace_ms
        retention = materialized.retention_ms or windows.retention_ms()
        if retention < minimum:
            raise TopologyError(
                f"store {store!r}: retention ({retention} ms) must be at least twice the time "
                f"difference plus grace ({minimum} ms)"
            )
        parent = grouped.source_for_aggregation(store)
        name = builder.node_name(kind, named)
        key_serde = materialized.key_serde or grouped.grouped.key_serde
        # Kafka Streams keeps a windowed changelog one day past the store's retention.
        changelog_config = {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(retention + _DAY_MS),
        }
        spec = StoreSpec(
            name=store,
            kind="window",
            key_serde=key_serde,
            value_serde=materialized.value_serde or grouped.grouped.value_serde,
            persistent=materialized.persistent,
            logging=materialized.logging,
            caching=materialized.caching,
            retention_ms=retention,
            window_size_ms=difference,
            changelog_config=changelog_config,
        )
        times = record_times_store_name(store)
        times_spec = StoreSpec(
            name=times,
            kind="window",
            key_serde=key_serde,
            value_serde=Serdes.Long(),
            persistent=materialized.persistent,
            logging=materialized.logging,
            caching=False,  # read by range on every record: a cache would be flushed anyway
            retention_ms=retention,
            window_size_ms=1,
            changelog_config=dict(changelog_config),
        )
        table = KTable(builder, name, store_name=store)

        def make_node(emit_on_close: bool) -> ProcessorNode:
            factory = sliding_aggregate_node(
                store, times, windows, initializer, aggregator, emit_on_close
            )
            return ProcessorNode(name, factory, [parent])

        builder.topology.add_node(make_node(False))
        builder.topology.add_state_store(spec, name)
        builder.topology.add_state_store(times_spec, name)
        table._switch_to_emit_final = lambda: builder.topology.replace_factory(
            name, make_node(True).factory
        )
        return table


class _RecordTimes:
    """The record timestamps of each key, for one task.

    The `{store}-record-times` store holds them (and a restore rebuilds it); they
    are mirrored in memory, sorted per key, so that the timestamps of one key in a
    range cost a bisection: a window store keeps its windows by time, then key, so
    a range of one key there visits the windows of every key in that range.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._retention: int = store.spec.retention_ms
        self._by_key: dict[Any, list[int]] | None = None  # built at first use: after restore
        self._horizon = -(2**63)  # timestamps at or before it have expired
        self._next_sweep = -(2**63)

    def _index(self) -> dict[Any, list[int]]:
        if self._by_key is None:
            by_key: dict[Any, list[int]] = {}
            for key, timestamp, _ in self._store.all():
                by_key.setdefault(key, []).append(timestamp)
            for times in by_key.values():
                times.sort()
            self._by_key = by_key
        return self._by_key

    def observe_stream_time(self, stream_time: int) -> None:
        """Expire as the store does: timestamps at or before stream time - retention."""
        self._store.observe_stream_time(stream_time)
        self._horizon = max(self._horizon, stream_time - self._retention)
        if self._by_key is not None and stream_time >= self._next_sweep:
            # Now and then, forget the expired timestamps of every key (lookups skip them).
            horizon = self._horizon
            for key, times in list(self._by_key.items()):
                del times[: bisect.bisect_right(times, horizon)]
                if not times:
                    del self._by_key[key]
            self._next_sweep = stream_time + max(1, self._retention // 2)

    def between(self, key: Any, low: int, high: int) -> list[int]:
        """The timestamps of `key` in [low, high], sorted."""
        times = self._index().get(key)
        if not times:
            return []
        low = max(low, self._horizon + 1)
        return times[bisect.bisect_left(times, low) : bisect.bisect_right(times, high)]

    def add(self, key: Any, timestamp: int) -> None:
        times = self._index().setdefault(key, [])
        i = bisect.bisect_left(times, timestamp)
        if i < len(times) and times[i] == timestamp:
            return
        times.insert(i, timestamp)
        self._store.put(key, 1, timestamp)


def _latest(times: list[int], low: int, high: int) -> int | None:
    """The largest of the sorted `times` in [low, high], if any."""
    i = bisect.bisect_right(times, high)
    if i and times[i - 1] >= low:
        return times[i - 1]
    return None


def sliding_aggregate_node(
    store_name: str,
    times_name: str,
    windows: SlidingWindows,
    initializer: Initializer,
    aggregator: Aggregator,
    emit_on_window_close: bool,
) -> NodeFactory:
    difference, grace = windows.time_difference_ms, windows.grace_ms

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        store = task.get_state_store(store_name)
        times = _RecordTimes(task.get_state_store(times_name))
        rc = task.record_context
        forward = forward_to(children)
        metrics = task.metrics
        fetch, put = store.fetch, store.put
        if not emit_on_window_close:
            forward_update = _forward_at(rc, forward)

            def on_flush(key: Any, start: int, value: Any, timestamp: int) -> None:
                window = TimeWindow(start, start + difference)
                forward_update(Windowed(key, window), value, timestamp)

            store.set_flush_listener(on_flush)
        emitted = CloseFrontier()

        def emit_closed(close_time: int) -> None:
            """Forward, once, every window ending in [last close time, close_time)."""
            last = emitted.advance(close_time)
            if last is None:
                return
            first_start, last_start = max(0, last - difference), close_time - 1 - difference
            if last_start < first_start:
                return
            closed = list(store.fetch_all(first_start, last_start))
            forward_each_at(rc, forward, (final(key, start, value) for key, start, value in closed))

        def final(key: Any, start: int, value: Any) -> tuple[Any, Any, int]:
            """A window's final result, stamped with its latest record's time."""
            end = start + difference
            latest = _latest(times.between(key, start, end), start, end)
            return Windowed(key, TimeWindow(start, end)), value, end if latest is None else latest

        def aggregate_record(key: Any, value: Any, t: int, close_time: int) -> bool:
            """Apply the record at `t` to the windows of `key`; False if it changed none."""
            # The key's record timestamps that can matter (t among them only if an earlier
            # record had it): the records before t, for its left window and the previous
            # record's right window, and after t, for its right window.
            near = times.between(key, max(0, t - 2 * difference - 1), t + 1 + difference)
            # The windows that may exist in [t - 2 * difference, t + 1]: left and right
            # windows of those records (and [0, difference] for early records).
            lowest = max(0, t - 2 * difference)
            starts = set()
            for q in near:
                starts.add(q - difference if q >= difference else 0)
                starts.add(q + 1)
            found: dict[int, Any] = {}
            for start in sorted(starts):
                if lowest <= start <= t + 1:
                    existing = fetch(key, start)
                    if existing is not None:
                        found[start] = existing
            with_t = list(near)
            bisect.insort(with_t, t)
            # Kafka's left and right aggregates: the windows with the largest start before
            # t - difference, and the largest start in (t - difference, t], as they were
            # before this record.
            left_source = right_source = None
            for start in found:
                if start < t - difference and (left_source is None or start > left_source):
                    left_source = start
                elif t - difference < start <= t and (right_source is None or start > right_source):
                    right_source = start
            left_value = None if left_source is None else found[left_source]
            right_value = None if right_source is None else found[right_source]
            changed = False

            def update(start: int, old: Any) -> bool:
                """Kafka's updateWindowAndForward: aggregate the record into a window."""
                end = start + difference
                if end < close_time:
                    return False  # closed: left as it is
                new = aggregator(key, value, initializer() if old is None else old)
                latest = _latest(with_t, start, end)
                rc.timestamp = t if latest is None else latest
                try:
                    put(key, new, start)
                finally:
                    rc.timestamp = t
                found[start] = new
                return True

            # Every window holding t.
            for start in sorted(found):
                if max(0, t - difference) <= start <= t:
                    changed = update(start, found[start]) or changed
            # The previous record's right window, if t falls into it.
            previous = _latest(near, 0, t - 1)
            if (
                previous is not None
                and previous + 1 + difference >= t
                and previous + 1 not in found
            ):
                changed = update(previous + 1, None) or changed
            # The record's left window.
            left_start = max(0, t - difference)
            if left_start not in found:
                old = None
                if (
                    t >= difference
                    and left_source is not None
                    and _latest(near, t - difference, left_source + difference) is not None
                ):
                    old = left_value
                changed = update(left_start, old) or changed
            # The record's right window, when a later record falls into it.
            if t + 1 not in found and right_source is not None:
                latest = _latest(near, t + 1, right_source + difference)
                if latest is not None:
                    rc.timestamp = latest
                    try:
                        put(key, right_value, t + 1)
                    finally:
                        rc.timestamp = t
                    found[t + 1] = right_value
                    changed = True
            if changed:
                times.add(key, t)
            return changed

        def aggregate(key: Any, value: Any) -> None:
            if key is None or value is None:
                metrics.dropped_records += 1
                return
            t = rc.timestamp
            stream_time = task.stream_time
            close_time = stream_time - grace
            if emit_on_window_close:
                # First: expiry (observe) must not drop a closed window before it is emitted.
                # This record cannot change a closed window (it skips them).
                emit_closed(close_time)
            store.observe_stream_time(stream_time)
            times.observe_stream_time(stream_time)
            if t + 1 + difference <= close_time or not aggregate_record(key, value, t, close_time):
                metrics.late_records += 1

        return aggregate

    return factory
