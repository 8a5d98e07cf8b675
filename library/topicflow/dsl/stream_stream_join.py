"""Stream-stream joins: Kafka Streams' KStreamImplJoin and KStreamKStreamJoin.

Each side's records go through a WINDOWED node, which keeps them in that
side's join window store (one that retains duplicates), then through the
side's join node, which looks the record's key up in the *other* side's store:
a left record at time t meets the right records of its key in
[t - before, t + after] (a right record, the left ones in [t - after,
t + before]). Both join nodes forward into one MERGE node. A result carries
the later of the two records' timestamps.

Left and outer joins also emit the records that found no partner, joined with
None, but only once no partner can come any more: such a record waits in the
store both sides share (`KSTREAM-OUTERSHARED-...-store`) until stream time
passes its window's end plus grace, so that a partner arriving within the
window cancels it and no early result is ever emitted. A partner arriving
later than that finds it gone. Kafka Streams 4.1's rules, which the
conformance suite pins:

- a record with a null key or value is dropped (counted), except that an
  outer side forwards a null-key record with a value at once, joined with None;
- stream time is shared by both sides; the shared store is scanned only when
  a record does not move stream time back, at most once per emit interval of
  wall-clock time (`StreamsConfig.outer_join_emit_interval_ms`, 1 s; 0 in the
  test drivers), and only when its oldest record's window may have closed;
- an outer side's record without partner whose window has already closed when
  it arrives (out of order) is forwarded at once, not stored;
- records too late for a store's retention (window size plus grace) are not
  kept, and are no longer found.

How a join enters the topology (names, stores, repartitioning) is in
`topicflow.dsl.stream_stream_join_graph`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from topicflow.dsl.join_windows import JoinWindows
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

__all__ = ["SideJoiner", "TimeTrackers", "join_side_node", "join_window_node"]

# Kafka Streams' default interval between scans of the shared store for records
# whose window closed (StreamsConfig.outer_join_emit_interval_ms): a scan is a
# full iteration, too costly to run per record.
DEFAULT_EMIT_INTERVAL_MS = 1000

_LONG_MAX = (1 << 63) - 1

# (key, this side's value, the other side's value) -> the result.
SideJoiner = Callable[[Any, Any, Any], Any]


class TimeTracker:
    """What both join nodes of one task share: stream time over both sides, the
    oldest timestamp in the shared store (as far as known), and the wall-clock
    time before which the shared store is not scanned again."""

    __slots__ = ("min_time", "next_time_to_emit", "stream_time")

    def __init__(self) -> None:
        self.stream_time = -1
        self.min_time = _LONG_MAX
        self.next_time_to_emit = 0


class TimeTrackers:
    """One TimeTracker per task, for the two join nodes of one join: keyed by the task
    itself, as two instances of an application in one process may both run a task
    of one id while it moves between them."""

    __slots__ = ("_by_task",)

    def __init__(self) -> None:
        self._by_task: weakref.WeakKeyDictionary[TaskContext, TimeTracker] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, task: TaskContext) -> TimeTracker:
        tracker = self._by_task.get(task)
        if tracker is None:
            tracker = self._by_task[task] = TimeTracker()
        return tracker

    def remove(self, task: TaskContext) -> None:
        self._by_task.pop(task, None)


def join_window_node(store_name: str) -> NodeFactory:
    """KStreamJoinWindow: forward each record, then keep it in this side's store."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        put = task.get_state_store(store_name).put
        rc = task.record_context

        def join_window(key: Any, value: Any) -> None:
            timestamp = rc.timestamp
            forward(key, value)
            # A record without key never joins; one without value is never joined
            # (and a store that retains duplicates has nothing to delete).
            if key is not None and value is not None:
                put(key, value, timestamp, timestamp)

        return join_window

    return factory


def join_side_node(
    other_store: str,
    shared_store: str | None,
    joiner: SideJoiner,
    windows: JoinWindows,
    is_left: bool,
    outer: bool,
    trackers: TimeTrackers,
) -> NodeFactory:
    """KStreamKStreamJoinLeftSide (`is_left`) or RightSide: join each record of this
    side with the other side's records in its window."""
    # The other side's records a record meets: [t - before, t + after] from the left,
    # the mirror image from the right.
    before, after = (
        (windows.before_ms, windows.after_ms) if is_left else (windows.after_ms, windows.before_ms)
    )
    grace = windows.grace_ms
    # How long after its own time a waiting record may still meet a partner, by side.
    left_look_back, right_look_back = windows.after_ms, windows.before_ms

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        rc = task.record_context
        # The inner store's own fetch: a join store is never cached, nothing to flush.
        fetch = task.get_state_store(other_store).inner.fetch_range
        shared = task.get_state_store(shared_store) if shared_store is not None else None
        tracker = trackers.get(task)
        task.on_close(lambda: trackers.remove(task))
        wall_clock_ms = task.wall_clock_ms
        emit_interval_ms = task.config.outer_join_emit_interval_ms
        if emit_interval_ms is None:
            emit_interval_ms = DEFAULT_EMIT_INTERVAL_MS

        def emit_non_joined(timestamp: int) -> None:
            """Forward, and drop from the shared store, the records whose window closed."""
            assert shared is not None
            stream_time = tracker.stream_time
            # Java's long arithmetic: an empty store's MAX_VALUE overflows, which
            # sends Kafka Streams into the scan below; so does this.
            horizon = tracker.min_time + after + grace
            if horizon > _LONG_MAX:
                horizon -= 1 << 64
            if horizon >= stream_time:
                return
            now = wall_clock_ms()
            if now < tracker.next_time_to_emit:
                return
            tracker.next_time_to_emit = now + emit_interval_ms
            tracker.min_time = _LONG_MAX
            previous = None
            left_open = right_open = False
            try:
                for stored_key, values in shared.all():
                    at, stored_left, key = stored_key
                    look_back = left_look_back if stored_left else right_look_back
                    for entry_left, entry_value in values:
                        tracker.min_time = at
                        if left_open and right_open:
                            return
                        if at + look_back + grace >= stream_time:
                            # Still open: no record of this side is due yet.
                            if stored_left:
                                left_open = True
                            else:
                                right_open = True
                            continue
                        rc.timestamp = at
                        if entry_left == is_left:
                            forward(key, joiner(key, entry_value, None))
                        else:
                            forward(key, joiner(key, None, entry_value))
                        # A key's whole list goes at once: only once all of it is out.
                        if previous is not None and previous != stored_key:
                            shared.remove(previous)
                        previous = stored_key
            finally:
                if previous is not None:
                    shared.remove(previous)
                rc.timestamp = timestamp

        def join_side(key: Any, value: Any) -> None:
            timestamp = rc.timestamp
            tracker.stream_time = max(tracker.stream_time, timestamp)
            if key is None or value is None:
                if outer and value is not None:
                    forward(key, joiner(key, value, None))
                    return
                metrics.dropped_records += 1
                return
            if shared is not None and timestamp == tracker.stream_time:
                emit_non_joined(timestamp)
            time_to = timestamp + after
            found = fetch(key, max(0, timestamp - before), max(0, time_to))
            if found:
                try:
                    for other_time, other_value in found:
                        if shared is not None:
                            # Joined now: the partner no longer waits to be emitted alone.
                            shared.remove_if_present((other_time, not is_left, key))
                        rc.timestamp = timestamp if timestamp > other_time else other_time
                        forward(key, joiner(key, value, other_value))
                finally:
                    rc.timestamp = timestamp
            elif outer:
                if shared is None or max(0, time_to) < tracker.stream_time:
                    # Its window closed already: no partner can come.
                    forward(key, joiner(key, value, None))
                else:
                    tracker.min_time = min(tracker.min_time, timestamp)
                    shared.add((timestamp, is_left, key), (is_left, value))

        return join_side

    return factory
