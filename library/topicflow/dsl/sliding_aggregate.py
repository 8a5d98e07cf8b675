"""The sliding-window aggregation node: Kafka Streams' KStreamSlidingWindowAggregate.

Kafka Streams' sliding windows (KIP-450), rule for rule, so that the output
records (key, value, timestamp and order) are Kafka's.
A window is `[start, start + difference]`, both ends INCLUSIVE; its key is
`Windowed(key, TimeWindow(start, start + difference))`, so for these windows
`TimeWindow.end` is the last millisecond in the window, not one past it.

The store is timestamped, as Kafka's: each window keeps (aggregate, timestamp),
the timestamp being the largest record timestamp aggregated into it. Kafka
finds the windows around a record (and the previous record's time) from them,
with one range fetch of the key's windows starting in [t - 2 * difference,
t + 1]; here a per-key index of window starts, kept in memory and rebuilt from
the store at a task's first record, gives those starts without flushing the
record cache (a range fetch flushes it, which would forward updates early).

Per record at t (KStreamSlidingWindowAggregateProcessor.process):
- a null key or a null value is dropped (Kafka 4.1 still does so for sliding
  windows, though its tumbling and hopping aggregations take null values);
- lateness uses the processor's own observed stream time (the largest timestamp
  of the records it took), close time = that - grace; a record whose own right
  edge t + difference is before close time is dropped;
- t < difference: processEarly (every record before `difference` shares [0, d]);
- otherwise processReverse (Kafka's stores all iterate backwards): visit the
  windows newest start first, updating the ones holding t, then create the
  previous record's right window, the record's left window, and its right window.
A window whose end is before close time is never updated or created (so a
late record may leave holes Kafka leaves too: see the tests).

Updates are forwarded when the cache flushes (at once without a cache), each
with its window's timestamp. With `suppress(Suppressed.until_window_closes())`
they go instead through a buffer that behaves as Kafka's KTableSuppressProcessor:
see `topicflow.dsl.suppress`.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable
from typing import Any

from topicflow.dsl.aggregations import Aggregator, Initializer, old_value_of
from topicflow.dsl.changes import EmitStrategy, OldValues, forward_at
from topicflow.dsl.suppress import SuppressionBuffer, time_windowed_key
from topicflow.dsl.windows import SlidingWindows, TimeWindow, Windowed
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to


class _WindowStarts:
    """The window starts of each key, sorted, for one task.

    Stands in for Kafka's per-key range fetch: a window store keeps its windows by
    time, then key, and a range fetch here flushes the record cache. Built from the
    store at first use (after any restore); a start may outlive its window (expired
    by retention): callers fetch each window and skip the missing ones.
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._retention: int = store.spec.retention_ms
        self._by_key: dict[Any, list[int]] | None = None
        self._latest = -(2**63)  # the largest start added
        self._next_sweep = -(2**63)

    def index(self) -> dict[Any, list[int]]:
        if self._by_key is None:
            by_key: dict[Any, list[int]] = {}
            for key, start, _ in self._store.all():
                by_key.setdefault(key, []).append(start)
                self._latest = max(self._latest, start)
            for starts in by_key.values():
                starts.sort()
            self._by_key = by_key
        return self._by_key

    def between(self, key: Any, low: int, high: int) -> list[int]:
        """The starts of `key` in [low, high], ascending."""
        starts = self.index().get(key)
        if not starts:
            return []
        return starts[bisect.bisect_left(starts, low) : bisect.bisect_right(starts, high)]

    def add(self, key: Any, start: int) -> None:
        by_key = self.index()
        starts = by_key.get(key)
        if starts is None:
            by_key[key] = [start]
        elif start > starts[-1]:
            starts.append(start)
        else:
            i = bisect.bisect_left(starts, start)
            if i == len(starts) or starts[i] != start:
                starts.insert(i, start)
        if start > self._latest:
            self._latest = start
            if start >= self._next_sweep:
                self._sweep()

    def _sweep(self) -> None:
        """Now and then, forget the starts retention has expired (the store's own time
        is the largest window start written, as Kafka's window stores)."""
        horizon = self._latest - self._retention
        assert self._by_key is not None
        fetch = self._store.fetch_with_timestamp
        for key, starts in list(self._by_key.items()):
            expired = bisect.bisect_right(starts, horizon)
            if expired:
                # The store's cache may still hold a window its inner store expired
                # (and Kafka Streams reads it there): keep the starts it still returns.
                starts[:expired] = [s for s in starts[:expired] if fetch(key, s) is not None]
            if not starts:
                del self._by_key[key]
        self._next_sweep = self._latest + max(1, self._retention // 2)


def shared_window_starts() -> Callable[[Any], _WindowStarts]:
    """One index of window starts per store, for the aggregation nodes that write to one
    store (a cogroup's): each must see the windows the others made."""
    by_store: weakref.WeakKeyDictionary[Any, _WindowStarts] = weakref.WeakKeyDictionary()

    def window_starts(store: Any) -> _WindowStarts:
        index = by_store.get(store)
        if index is None:
            index = by_store[store] = _WindowStarts(store)
        return index

    return window_starts


def _suppression_buffer(
    store: Any, difference: int, grace: int, forward: Callable[[Any, Any, int], None]
) -> Callable[[Any, int, Any, int, Any], None]:
    """The sliding aggregation's updates, as they leave it, through Kafka Streams'
    suppression buffer (`SuppressionBuffer`), which waits `grace` past a window's end.

    At a task's first update the buffer is refilled from the window store: its stream
    time is the largest window timestamp there (every window's timestamp reached the
    buffer), and every window ending after stream time - grace is still buffered,
    with the value the store holds.
    """
    serialize_key = store.serialize_key
    buffer = SuppressionBuffer(grace, TimeWindow, forward)
    refilled = False

    def buffered(key: Any, start: int, value: Any, timestamp: int, update: Any) -> None:
        windowed_key = time_windowed_key(serialize_key(key) or b"", start)
        update(windowed_key, key, start, start + difference, value, timestamp)

    def receive(key: Any, start: int, value: Any, timestamp: int, _old: Any) -> None:
        nonlocal refilled
        if not refilled:
            refilled = True
            found = list(store.fetch_all_with_timestamps(0, 2**63 - 1))
            buffer.stream_time = max((entry[1] for _k, _s, entry in found), default=-1)
            cut = buffer.stream_time - grace
            for k, s, entry in found:
                if s + difference > cut:
                    buffered(k, s, entry[0], entry[1], buffer.buffer)
        buffered(key, start, value, timestamp, buffer.update)

    return receive


def sliding_aggregate_node(
    store_name: str,
    windows: SlidingWindows,
    initializer: Initializer,
    aggregator: Aggregator,
    emit: EmitStrategy,
    old_values: OldValues,
    window_starts: Callable[[Any], _WindowStarts] = _WindowStarts,
) -> NodeFactory:
    """Kafka Streams' KStreamSlidingWindowAggregate (and KTableSuppressProcessor on it).

    `window_starts` gives the store's index of window starts: the node's own, unless
    nodes share the store (`shared_window_starts`)."""
    difference, grace = windows.time_difference_ms, windows.grace_ms

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        emit_on_window_close = emit.on_window_close  # set by suppress() or not
        store = task.get_state_store(store_name)
        index = window_starts(store)
        metrics = task.metrics
        fetch, put = store.fetch_with_timestamp, store.put
        # Kafka's updateWindowAndForward sends the aggregate a record was added to
        # as the old value (a new window's initial one included).
        send_old = store.send_old_values = old_values.sent
        forward_update = forward_at(task.record_context, forward_to(children))
        if emit_on_window_close:
            store.set_flush_listener(_suppression_buffer(store, difference, grace, forward_update))
        else:

            def on_flush(key: Any, start: int, value: Any, timestamp: int, old: Any) -> None:
                forward_update(
                    Windowed(key, TimeWindow(start, start + difference)), value, timestamp, old
                )

            store.set_flush_listener(on_flush)

        # The largest timestamp this processor has taken (Kafka's observedStreamTime).
        observed = -1
        # Whether the record in flight changed a window: one that changed none is
        # counted as late (Kafka counts each skipped window as a dropped record).
        changed = False

        def update(
            key: Any, value: Any, t: int, start: int, old: Any, old_time: int, close: int, new: bool
        ) -> None:
            """Kafka's updateWindowAndForward: aggregate the record into the window at
            `start` unless it closed; its timestamp becomes max(t, the window's)."""
            nonlocal changed
            if start + difference < close:
                return  # closed: Kafka logs it as skipped and leaves it
            changed = True
            put(
                key,
                aggregator(key, value, old),
                start,
                t if old_time < t else old_time,
                old_value_of(old) if send_old else None,
            )
            if new:
                index.add(key, start)

        def create_right_window(key: Any, t: int, right_agg: tuple[Any, ...]) -> None:
            """Kafka's createCurrentRecordRightWindow: [t + 1, t + 1 + d] is a copy of
            `right_agg` (value and timestamp); it ends after close time, so no check."""
            nonlocal changed
            changed = True
            put(key, right_agg[0], t + 1, right_agg[1])
            index.add(key, t + 1)

        def create_windows(
            key: Any,
            value: Any,
            t: int,
            close: int,
            seen: set[int],
            right_agg: tuple[Any, ...] | None,
            left_agg: tuple[Any, ...] | None,
            left_created: bool,
            right_created: bool,
            previous: int | None,
        ) -> None:
            """Kafka's createWindows, in its order."""
            if previous is not None:
                # The previous record's right window, when t falls into it.
                previous_right = previous + 1
                if previous_right not in seen and previous_right + difference >= t:
                    update(key, value, t, previous_right, initializer(), t, close, True)
            if not left_created:
                # The left window starts from the aggregate of the latest window ending
                # before t - but only if the previous record is within difference of t
                # (that window may hold more than [t - d, t) when windows were skipped).
                if previous is not None and t - difference <= previous and left_agg is not None:
                    base = left_agg[0]
                else:
                    base = initializer()
                update(key, value, t, t - difference, base, t, close, True)
            if not right_created and right_agg is not None and right_agg[1] > t:
                # The right window is a copy of the latest window holding t (before this
                # record), when it holds a later record; it cannot have closed.
                create_right_window(key, t, right_agg)

        def process_reverse(key: Any, value: Any, t: int, close: int) -> None:
            """Kafka's processReverse: the key's windows in [t - 2d, t + 1], newest first."""
            seen: set[int] = set()
            right_agg = left_agg = None
            left_created = right_created = False
            previous = None
            for start in reversed(index.between(key, t - 2 * difference, t + 1)):
                entry = fetch(key, start)
                if entry is None:
                    continue  # expired
                seen.add(start)
                end = start + difference
                if start == t + 1:
                    right_created = True
                elif end > t:
                    if right_agg is None:
                        right_agg = entry
                    update(key, value, t, start, entry[0], entry[1], close, False)
                elif end == t:
                    left_created = True
                    update(key, value, t, start, entry[0], entry[1], close, False)
                    if entry[1] < t:
                        previous = entry[1]
                    else:
                        # A record at t came before: every window it needs exists.
                        return
                else:
                    left_agg = entry
                    previous = entry[1]
                    break
            create_windows(
                key,
                value,
                t,
                close,
                seen,
                right_agg,
                left_agg,
                left_created,
                right_created,
                previous,
            )

        def process_early(key: Any, value: Any, t: int, close: int) -> None:
            """Kafka's processEarly, for 0 <= t < difference: the window [0, d] holds
            every early record; windows in (0, t + 1], oldest first."""
            combined = None
            right_agg = None
            right_created = False
            seen: set[int] = set()
            previous = None
            for start in index.between(key, 0, t + 1):
                entry = fetch(key, start)
                if entry is None:
                    continue
                seen.add(start)
                if start == 0:
                    combined = entry
                    if entry[1] < t:
                        previous = entry[1]
                elif start <= t:
                    right_agg = entry
                    update(key, value, t, start, entry[0], entry[1], close, False)
                elif start == t + 1:
                    right_created = True
            # With no window in (0, t], [0, d] holds only records after t when its
            # timestamp is: it is the right window's aggregate (Kafka's reasoning).
            if right_agg is None and combined is not None and combined[1] > t:
                right_agg = combined
            if not right_created and right_agg is not None and right_agg[1] > t:
                create_right_window(key, t, right_agg)
            if previous is not None and previous + 1 not in seen:
                update(key, value, t, previous + 1, initializer(), t, close, True)
            if combined is None:
                update(key, value, t, 0, initializer(), t, close, True)
            else:
                update(key, value, t, 0, combined[0], combined[1], close, False)

        def aggregate(key: Any, value: Any) -> None:
            nonlocal observed, changed
            # KStreamSlidingWindowAggregate skips a null key or a null value (unlike
            # KStreamWindowAggregate, which aggregates null values), before
            # observing the record's time.
            if key is None or value is None:
                metrics.dropped_records += 1
                return
            t = task.record_context.timestamp
            observed = max(observed, t)
            close = observed - grace
            if t + difference < close:
                metrics.late_records += 1
                return
            changed = False
            if t < difference:
                process_early(key, value, t, close)
            else:
                process_reverse(key, value, t, close)
            if not changed:
                metrics.late_records += 1

        return aggregate

    return factory
