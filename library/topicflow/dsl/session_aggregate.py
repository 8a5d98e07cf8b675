"""The session-window aggregation node: Kafka Streams' KStreamSessionWindowAggregate.

Per key, records whose timestamps are at most the inactivity gap apart belong
to one session [first timestamp, last timestamp] (both inclusive). A record at t:

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

Records with a null key are dropped and counted in `dropped_records`; a null
value is aggregated, as Kafka's session aggregation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.dsl.aggregations import Aggregator, Initializer
from topicflow.dsl.changes import EmitStrategy, OldValues, forward_at
from topicflow.dsl.suppress import SuppressionBuffer
from topicflow.dsl.windows import SessionWindow, SessionWindows, Windowed
from topicflow.state.session_store import session_changelog_key
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

# merger(key, aggregate1, aggregate2) -> merged aggregate (Kafka's Merger)
Merger = Callable[[Any, Any, Any], Any]


def session_aggregate_node(
    store_name: str,
    windows: SessionWindows,
    initializer: Initializer,
    aggregator: Aggregator,
    merger: Merger,
    emit: EmitStrategy,
    old_values: OldValues,
) -> NodeFactory:
    gap, grace = windows.gap_ms, windows.grace_ms
    # suppress(untilWindowCloses) waits, for sessions, grace + gap past a session's end
    # (GraphGraceSearchUtil.extractGracePeriod for KStreamSessionWindowAggregate).
    suppress_for = grace + gap

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        emit_on_window_close = emit.on_window_close  # set by suppress() or not
        store = task.get_state_store(store_name)
        rc = task.record_context
        forward = forward_to(children)
        metrics = task.metrics
        find_sessions, put, remove = store.find_sessions, store.put, store.remove
        # KStreamSessionWindowAggregate's own stream time: the largest timestamp of the
        # records it took (past the null-key check), not the task's stream time.
        observed = -1
        if not emit_on_window_close:
            forward_update = forward_at(rc, forward)
            # A new session's old value is null; a merged-away one's is its aggregate
            # (maybeForwardUpdate's Change), or, through the cache, what the store held.
            store.send_old_values = old_values.sent

            def on_flush(
                key: Any, start: int, end: int, value: Any, _timestamp: int, old: Any
            ) -> None:
                # Results and tombstones carry the session's end as timestamp, with or
                # without the cache (KStreamSessionWindowAggregate.maybeForwardUpdate,
                # SessionCacheFlushListener).
                forward_update(Windowed(key, SessionWindow(start, end)), value, end, old)

            store.set_flush_listener(on_flush)
        else:
            store.set_flush_listener(_suppression_buffer(task, store, forward, suppress_for))

        def aggregate(key: Any, value: Any) -> None:
            nonlocal observed
            # Kafka Streams drops null keys only: a null value is aggregated.
            if key is None:
                metrics.dropped_records += 1
                return
            timestamp = rc.timestamp
            observed = max(observed, timestamp)
            merged = list(find_sessions(key, timestamp - gap, timestamp + gap))
            start = end = timestamp
            agg = initializer()
            for session_start, session_end, session_value in merged:
                agg = merger(key, agg, session_value)
                start = min(start, session_start)
                end = max(end, session_end)
            if end < observed - grace - gap:
                metrics.late_records += 1
                return
            if start != timestamp or end != timestamp:
                for session_start, session_end, _ in merged:
                    remove(key, session_start, session_end)
            put(key, start, end, aggregator(key, value, agg))

        return aggregate

    return factory


def _suppression_buffer(
    task: TaskContext, store: Any, forward: Forward, suppress_for: int
) -> Callable[[Any, int, int, Any, int, Any], None]:
    """The session aggregation's updates, as they leave it (at once without a cache, at
    flush with one), through Kafka Streams' suppression buffer (`SuppressionBuffer`).

    Each update carries its session's end as timestamp; a session's serialized
    windowed key is key bytes, end, start (SessionWindowedSerializer), which orders
    windows of one end.

    After a restore (a takeover), the buffer is refilled from the store before the
    first update: the sessions the previous owner's buffer still held are those
    ending after the store's stream time - grace - gap (its buffer saw every end the
    store saw); the ones before were emitted.
    """
    serialize_key = store.serialize_key
    buffer = SuppressionBuffer(
        suppress_for, SessionWindow, forward_at(task.record_context, forward)
    )
    refilled = False

    def receive(key: Any, start: int, end: int, value: Any, _timestamp: int, _old: Any) -> None:
        nonlocal refilled
        if not refilled:
            refilled = True
            buffer.stream_time = store.observed_stream_time
            for k, s, e, v in store.find_sessions_ending_between(
                buffer.stream_time - suppress_for + 1, 2**63 - 1
            ):
                if (k, s, e) != (key, start, end):
                    buffer.buffer(
                        session_changelog_key(serialize_key(k) or b"", s, e), k, s, e, v, e
                    )
        windowed_key = session_changelog_key(serialize_key(key) or b"", start, end)
        buffer.update(windowed_key, key, start, end, value, end)

    return receive
