"""The store a processor sees: an inner store behind a record cache and a changelog.

Writes go to the cache (Python objects, one entry per key) and reach the inner
store, the changelog topic and the flush listener (which forwards the new value
downstream, for DSL aggregations) only when the cache is flushed: at every
commit, or when it is full. Repeated updates to a key between commits therefore
cost one serialization, one changelog record and one downstream record, as with
Kafka Streams' `statestore.cache.max.bytes`. Without a cache (size 0), every
write goes through at once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

from topicflow.brokers.base import Headers
from topicflow.state.flush_stamp import flush_stamp
from topicflow.state.session_store import session_changelog_key
from topicflow.state.stores import InMemoryWindowStore, StoreSpec
from topicflow.topology.nodes import RecordContext, RecordSender

# (key, value, timestamp, old value) of a change that reached the store, for the
# listener; the old value is None unless the store sends old values.
FlushListener = Callable[[Any, Any, int, Any], None]
WindowFlushListener = Callable[[Any, int, Any, int, Any], None]

# Window changelog keys, as Kafka Streams' WindowKeySchema: key bytes, then the
# window start (8 bytes) and a sequence number (4 bytes), big-endian.
_WINDOW_SUFFIX = struct.Struct(">qi")


def window_changelog_key(key_bytes: bytes, window_start: int) -> bytes:
    return key_bytes + _WINDOW_SUFFIX.pack(window_start, 0)


def split_window_changelog_key(data: bytes) -> tuple[bytes, int]:
    start, _seq = _WINDOW_SUFFIX.unpack_from(data, len(data) - _WINDOW_SUFFIX.size)
    return data[: -_WINDOW_SUFFIX.size], start


class ChangelogWriter:
    """Sends a store's changes to its changelog partition through the task's producer."""

    __slots__ = ("_partition", "_send", "_serialize_key", "_serialize_value", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        sender: RecordSender,
        key_serde: Any,
        value_serde: Any,
    ) -> None:
        self.topic = topic
        self._partition = partition
        self._send = sender.send
        self._serialize_key = key_serde.serialize
        self._serialize_value = value_serde.serialize

    def log(self, key: Any, value: Any, timestamp: int, headers: Headers | None = None) -> None:
        self._send(
            self.topic,
            self._serialize_key(key),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )

    def log_session(
        self,
        key: Any,
        start: int,
        end: int,
        value: Any,
        timestamp: int,
        headers: Headers | None = None,
    ) -> None:
        self._send(
            self.topic,
            session_changelog_key(self._serialize_key(key), start, end),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )

    def log_window(
        self,
        key: Any,
        window_start: int,
        value: Any,
        timestamp: int,
        headers: Headers | None = None,
    ) -> None:
        self._send(
            self.topic,
            window_changelog_key(self._serialize_key(key), window_start),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )


def _no_serializer(key: Any) -> bytes | None:
    raise TypeError("store key serializer not set")


class _CachedStore:
    """What the cached stores share: the inner store, the changelog, the cache size,
    and the flush listener through which an aggregation forwards its results."""

    def __init__(
        self,
        spec: StoreSpec,
        inner: Any,
        changelog: ChangelogWriter | None,
        record_context: RecordContext,
        cache_entries: int,
    ) -> None:
        self.name = spec.name
        self.spec = spec
        self.inner = inner
        self._changelog = changelog
        self._rc = record_context
        self._cache_entries = cache_entries if spec.caching else 0
        # Timestamped (KIP-258): the inner store holds (value, timestamp) pairs.
        self._timestamped = spec.timestamped
        self._dirty: dict[Any, Any] = {}
        self._listener: Any = None
        # Kafka Streams' sendOldValues, set by the node that owns the store when a
        # table below asks for old values: each change then reaches the listener
        # with the value it replaces.
        self.send_old_values = False
        # The store's key serializer (set by the state manager): where Kafka Streams
        # orders by serialized key, so do we.
        self.serialize_key: Callable[[Any], bytes | None] = _no_serializer
        # Idempotent state (else None): the task's input position, which stamps
        # changelog records; and after a restore, the stamps of the keys a replay
        # may find already applied, until the replay passes `_replay_until`.
        self._flushed_through: Callable[[], int] | None = None
        self.replay_stamps: dict[Any, int] | None = None
        self._replay_until = -1

    def _unstored(self, stored: Any) -> Any:
        """The value of what the inner store keeps (see `_stored`)."""
        if stored is None or not self._timestamped:
            return stored
        return stored[0]

    def _stored(self, value: Any, timestamp: int) -> Any:
        """What the inner store keeps: `(value, timestamp)` when timestamped, else the value."""
        if value is None or not self._timestamped:
            return value
        return value, timestamp

    def stamp_flushes(self, flushed_through: Callable[[], int]) -> None:
        self._flushed_through = flushed_through

    @property
    def stamped(self) -> bool:
        return self._flushed_through is not None and self._changelog is not None

    def set_replay_stamps(self, stamps: dict[Any, int]) -> None:
        """After a restore: keys whose changelog value covers input up to their stamp."""
        if stamps:
            self.replay_stamps = stamps
            self._replay_until = max(stamps.values())

    def _replay_stamp(self, key: Any, offset: int) -> int | None:
        """The stamp of `key` if the input record at `offset` is already in its value."""
        if offset >= self._replay_until:
            self.replay_stamps = None  # the replay is over
            return None
        assert self.replay_stamps is not None
        stamp = self.replay_stamps.get(key)
        return stamp if stamp is not None and offset < stamp else None

    def _stamp(self) -> int:
        """The flush stamp of a write now: every input record before it is in the value
        written (the record in flight included)."""
        flushed_through = self._flushed_through
        return 0 if flushed_through is None else flushed_through()

    def _stamp_headers(self, stamp: int) -> Headers | None:
        return None if self._flushed_through is None else flush_stamp(stamp)

    def set_flush_listener(self, listener: Any) -> None:
        self._listener = listener

    @property
    def forwards(self) -> bool:
        """Whether flushing sends records downstream (an aggregation's store)."""
        return self._listener is not None

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._dirty.clear()
        self.inner.close()


class CachedKeyValueStore(_CachedStore):
    """A key-value store with a record cache and a changelog.

    The flush listener is a `FlushListener`: (key, value, timestamp).
    """

    def get(self, key: Any) -> Any:
        cached = self._dirty.get(key)
        if cached is not None:
            return cached[0]
        return self._unstored(self.inner.get(key))

    def get_with_timestamp(self, key: Any) -> tuple[Any, ...] | None:
        """A timestamped store's entry for `key`: value at [0], timestamp at [1]; or None.

        Kafka Streams' `TimestampedKeyValueStore.get`. The entry is the cache's
        or the inner store's own tuple: nothing is allocated per call.
        """
        cached = self._dirty.get(key)
        if cached is not None:
            return None if cached[0] is None else cached
        return self.inner.get(key)  # type: ignore[no-any-return]

    def replayed(self, key: Any, offset: int) -> bool:
        """Idempotent state, after a restore: whether the input record at `offset` is
        already in the value of `key`. If so the key is written again (same value,
        same stamp) at the next flush: it may not have reached downstream before
        the crash."""
        stamp = self._replay_stamp(key, offset)
        if stamp is None:
            return False
        entry = self.get_with_timestamp(key) if self._timestamped else None
        timestamp = self._rc.timestamp if entry is None else entry[1]
        self._put(key, self.get(key), timestamp, stamp)
        return True

    def put(self, key: Any, value: Any, timestamp: int | None = None, old: Any = None) -> None:
        """Write `key`; its timestamp is the record's in flight unless given.

        `old` is what the listener hears as the old value when the write goes
        through at once (no cache), as Kafka Streams' processors forward it
        themselves then; a cache flush reads the old value from the inner store.
        """
        timestamp = self._rc.timestamp if timestamp is None else timestamp
        self._put(key, value, timestamp, self._stamp(), old)

    def _put(self, key: Any, value: Any, timestamp: int, stamp: int, old: Any = None) -> None:
        if not self._cache_entries:
            self._write_through(key, value, timestamp, stamp, old)
            return
        # Remove, then add: a flush follows the order of the latest writes, as
        # Kafka Streams' NamedCache does.
        dirty = self._dirty
        dirty.pop(key, None)
        dirty[key] = (value, timestamp, stamp)
        if len(dirty) > self._cache_entries:
            self.flush()

    def put_if_absent(self, key: Any, value: Any) -> Any:
        existing = self.get(key)
        if existing is None:
            self.put(key, value)
        return existing

    def delete(self, key: Any) -> Any:
        existing = self.get(key)
        self.put(key, None)
        return existing

    def all(self) -> Iterator[tuple[Any, Any]]:
        self.flush()
        if self._timestamped:
            return ((key, entry[0]) for key, entry in self.inner.all())
        return self.inner.all()  # type: ignore[no-any-return]

    def approximate_num_entries(self) -> int:
        return self.inner.approximate_num_entries() + len(self._dirty)  # type: ignore[no-any-return]

    def _write_through(
        self, key: Any, value: Any, timestamp: int, stamp: int, old: Any = None
    ) -> None:
        self.inner.put(key, self._stored(value, timestamp))
        if self._changelog is not None:
            self._changelog.log(key, value, timestamp, self._stamp_headers(stamp))
        if self._listener is not None:
            self._listener(key, value, timestamp, old)

    def flush(self) -> None:
        """Write every cached change through: store, changelog, listener.

        A deletion of a key the inner store does not hold is dropped here, as
        Kafka Streams' CachingKeyValueStore does: nothing to delete, nothing to tell.
        """
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        inner_get = self.inner.get
        send_old_values = self.send_old_values
        for key, (value, timestamp, stamp) in dirty.items():
            if value is None or send_old_values:
                stored = inner_get(key)
                if stored is None and value is None:
                    continue
                old = self._unstored(stored) if send_old_values else None
                self._write_through(key, value, timestamp, stamp, old)
            else:
                self._write_through(key, value, timestamp, stamp)

    def restore(self, key: Any, value: Any, timestamp: int) -> None:
        """Apply one changelog record: its timestamp is the value's (timestamped stores)."""
        self.inner.put(key, self._stored(value, timestamp))


def _write_order(item: tuple[tuple[Any, int, int, int], Any, int]) -> int:
    return item[0][3]


class CachedWindowStore(_CachedStore):
    """A window store with a record cache and a changelog; expires windows by stream time.

    The flush listener is a `WindowFlushListener`: (key, window start, value, timestamp).
    """

    def __init__(
        self,
        spec: StoreSpec,
        inner: InMemoryWindowStore | Any,
        changelog: ChangelogWriter | None,
        record_context: RecordContext,
        cache_entries: int,
    ) -> None:
        super().__init__(spec, inner, changelog, record_context, cache_entries)
        # window start -> key -> (value, timestamp, stamp, write sequence): no tuple
        # key per record; the sequence orders the flush.
        self._dirty: dict[int, dict[Any, tuple[Any, int, int, int]]] = {}
        self._dirty_count = 0
        self._writes = 0

    def observe_stream_time(self, stream_time: int) -> None:
        self.inner.observe_stream_time(stream_time)

    def fetch(self, key: Any, window_start: int) -> Any:
        window = self._dirty.get(window_start)
        if window is not None:
            cached = window.get(key)
            if cached is not None:
                return cached[0]
        return self._unstored(self.inner.fetch(key, window_start))

    def fetch_with_timestamp(self, key: Any, window_start: int) -> tuple[Any, ...] | None:
        """A timestamped store's entry: value at [0], timestamp at [1]; or None.

        Kafka Streams' `TimestampedWindowStore.fetch(key, start)`; allocates nothing.
        """
        window = self._dirty.get(window_start)
        if window is not None:
            cached = window.get(key)
            if cached is not None:
                return None if cached[0] is None else cached
        return self.inner.fetch(key, window_start)  # type: ignore[no-any-return]

    def replayed(self, key: Any, window_start: int, offset: int) -> bool:
        """As `CachedKeyValueStore.replayed`, for the window of `key` at `window_start`."""
        stamp = self._replay_stamp((key, window_start), offset)
        if stamp is None:
            return False
        entry = self.fetch_with_timestamp(key, window_start) if self._timestamped else None
        timestamp = self._rc.timestamp if entry is None else entry[1]
        self._put(key, self.fetch(key, window_start), window_start, timestamp, stamp)
        return True

    def put(
        self,
        key: Any,
        value: Any,
        window_start: int,
        timestamp: int | None = None,
        old: Any = None,
    ) -> None:
        """Write the window of `key`; its timestamp is the record's in flight unless given.

        `old` as in `CachedKeyValueStore.put`.
        """
        # As self._stamp(), inline: this is the windowed aggregations' per-record call.
        flushed_through = self._flushed_through
        self._put(
            key,
            value,
            window_start,
            self._rc.timestamp if timestamp is None else timestamp,
            0 if flushed_through is None else flushed_through(),
            old,
        )

    def _put(
        self,
        key: Any,
        value: Any,
        window_start: int,
        timestamp: int,
        stamp: int,
        old: Any = None,
    ) -> None:
        if not self._cache_entries:
            self._write_through(key, window_start, value, timestamp, stamp, old)
            return
        window = self._dirty.get(window_start)
        if window is None:
            window = self._dirty[window_start] = {}
        if key not in window:
            self._dirty_count += 1
        self._writes += 1
        window[key] = (value, timestamp, stamp, self._writes)
        if self._dirty_count > self._cache_entries:
            self.flush()

    def fetch_range(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]:
        self.flush()
        found = self.inner.fetch_range(key, time_from, time_to)
        if self._timestamped:
            return ((start, entry[0]) for start, entry in found)
        return found  # type: ignore[no-any-return]

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]:
        self.flush()
        found = self.inner.fetch_all(time_from, time_to)
        if self._timestamped:
            return ((key, start, entry[0]) for key, start, entry in found)
        return found  # type: ignore[no-any-return]

    def fetch_all_with_timestamps(
        self, time_from: int, time_to: int
    ) -> Iterator[tuple[Any, int, tuple[Any, ...]]]:
        """(key, window start, entry) of a timestamped store, entry as `fetch_with_timestamp`."""
        self.flush()
        return self.inner.fetch_all(time_from, time_to)  # type: ignore[no-any-return]

    def all(self) -> Iterator[tuple[Any, int, Any]]:
        self.flush()
        found = self.inner.all()
        if self._timestamped:
            return ((key, start, entry[0]) for key, start, entry in found)
        return found  # type: ignore[no-any-return]

    def approximate_num_entries(self) -> int:
        return self.inner.approximate_num_entries() + self._dirty_count  # type: ignore[no-any-return]

    def _write_through(
        self,
        key: Any,
        window_start: int,
        value: Any,
        timestamp: int,
        stamp: int,
        old: Any = None,
    ) -> None:
        self.inner.put(key, self._stored(value, timestamp), window_start)
        if self._changelog is not None:
            self._changelog.log_window(
                key, window_start, value, timestamp, self._stamp_headers(stamp)
            )
        if self._listener is not None:
            self._listener(key, window_start, value, timestamp, old)

    def flush(self) -> None:
        """Write every cached change through, in the order of the latest writes.

        That is Kafka Streams' NamedCache order (a key written again moves to the
        end); the sort runs once per flush, not per write.
        """
        if not self._dirty:
            return
        dirty, self._dirty, self._dirty_count = self._dirty, {}, 0
        entries = [
            (entry, key, window_start)
            for window_start, window in dirty.items()
            for key, entry in window.items()
        ]
        entries.sort(key=_write_order)
        inner_fetch = self.inner.fetch
        send_old_values = self.send_old_values
        for (value, timestamp, stamp, _seq), key, window_start in entries:
            if value is None or send_old_values:
                stored = inner_fetch(key, window_start)
                # As CachingWindowStore: deleting what the inner store does not
                # hold is neither written nor forwarded.
                if stored is None and value is None:
                    continue
                old = self._unstored(stored) if send_old_values else None
                self._write_through(key, window_start, value, timestamp, stamp, old)
            else:
                self._write_through(key, window_start, value, timestamp, stamp)

    def restore(self, key: Any, window_start: int, value: Any, timestamp: int) -> None:
        """Apply one changelog record: its timestamp is the value's (timestamped stores)."""
        self.inner.put(key, self._stored(value, timestamp), window_start)


# -- session stores (appended: CachedSessionStore) ----------------------------------------------

# (key, session start, session end, value, timestamp, old value) of a change that
# reached the store.
SessionFlushListener = Callable[[Any, int, int, Any, int, Any], None]


class CachedSessionStore(_CachedStore):
    """A session store with a record cache and a changelog; expires sessions by stream time.

    The cache holds the changed sessions, (key, start, end) -> (value, timestamp, stamp),
    in the order of their latest write (as Kafka Streams' cache), so a merge
    flushes the removed sessions' tombstones before the merged session. A tombstone
    for a session the inner store does not hold (created and merged away between
    two flushes, or expired) is dropped at flush: no store write, no changelog
    record, nothing forwarded, as Kafka Streams' CachingSessionStore.putAndMaybeForward.

    As Kafka Streams' NamedCache, a flush keeps the sessions it wrote as clean
    entries (a flushed tombstone leaves the cache), until the cache is full and
    evicts the oldest. Reads overlay the cache, clean entries included, on the
    inner store; the cache knows no retention, so a session that expired from the
    inner store is still found while it is cached, and a record can still merge
    into it (what Kafka Streams does with caching on).

    Without a cache every change goes through at once, with no such check, as
    Kafka Streams' ChangeLoggingSessionStore: `remove` removes (it does not
    advance the inner store's stream time), `put(..., None)` is a put of None
    (it does), and the listener hears both.
    The flush listener is a `SessionFlushListener`.
    """

    def __init__(
        self,
        spec: StoreSpec,
        inner: Any,
        changelog: ChangelogWriter | None,
        record_context: RecordContext,
        cache_entries: int,
    ) -> None:
        super().__init__(spec, inner, changelog, record_context, cache_entries)
        self._dirty: dict[tuple[Any, int, int], tuple[Any, int, int]] = {}
        # Flushed sessions still cached, oldest first: (key, start, end) -> value.
        self._clean: dict[tuple[Any, int, int], Any] = {}
        # key -> its cached sessions (dirty or clean) {(start, end): None}, for reads by key.
        self._cached_by_key: dict[Any, dict[tuple[int, int], None]] = {}

    def observe_stream_time(self, stream_time: int) -> None:
        self.inner.observe_stream_time(stream_time)

    @property
    def observed_stream_time(self) -> int:
        """The inner store's stream time: the largest session end written through."""
        return self.inner.observed_stream_time  # type: ignore[no-any-return]

    # -- reads ---------------------------------------------------------------------------

    def fetch_session(self, key: Any, start: int, end: int) -> Any:
        cache_key = (key, start, end)
        cached = self._dirty.get(cache_key)
        if cached is not None:
            return cached[0]
        value = self._clean.get(cache_key)
        if value is not None:
            return value
        return self.inner.fetch_session(key, start, end)

    def find_sessions(
        self, key: Any, earliest_session_end: int, latest_session_start: int
    ) -> Iterator[tuple[int, int, Any]]:
        """(start, end, value) of the sessions of `key` ending at or after
        `earliest_session_end` and starting at or before `latest_session_start`."""
        found = self.inner.find_sessions(key, earliest_session_end, latest_session_start)
        cached = self._cached_by_key.get(key)
        if not cached:
            return found  # type: ignore[no-any-return]
        return self._overlay(key, found, cached, earliest_session_end, latest_session_start)

    def fetch(self, key: Any) -> Iterator[tuple[int, int, Any]]:
        """(start, end, value) of every session of `key`, by end then start."""
        return self.find_sessions(key, -(2**63), 2**63 - 1)

    def _overlay(
        self,
        key: Any,
        found: Iterator[tuple[int, int, Any]],
        cached: dict[tuple[int, int], None],
        earliest_session_end: int,
        latest_session_start: int,
    ) -> Iterator[tuple[int, int, Any]]:
        sessions = {(start, end): value for start, end, value in found}
        dirty, clean = self._dirty, self._clean
        for start, end in cached:
            if end >= earliest_session_end and start <= latest_session_start:
                entry = dirty.get((key, start, end))
                value = clean[(key, start, end)] if entry is None else entry[0]
                if value is None:
                    sessions.pop((start, end), None)
                else:
                    sessions[(start, end)] = value
        ordered = sorted(sessions.items(), key=lambda item: (item[0][1], item[0][0]))
        return iter([(start, end, value) for (start, end), value in ordered])

    def find_sessions_ending_between(
        self, earliest_end: int, latest_end: int
    ) -> Iterator[tuple[Any, int, int, Any]]:
        """Every session of any key ending in [earliest_end, latest_end], by end: the
        inner store's, flushed first (clean cached sessions the inner store expired
        are not included)."""
        self.flush()
        return self.inner.find_sessions_ending_between(earliest_end, latest_end)  # type: ignore[no-any-return]

    def all(self) -> Iterator[tuple[Any, int, int, Any]]:
        """(key, start, end, value) of every session."""
        self.flush()
        return self.inner.all()  # type: ignore[no-any-return]

    def approximate_num_entries(self) -> int:
        return self.inner.approximate_num_entries() + len(self._dirty)  # type: ignore[no-any-return]

    # -- writes --------------------------------------------------------------------------

    def put(self, key: Any, start: int, end: int, value: Any) -> None:
        """Write the aggregate of session [start, end] of `key`; None removes the session."""
        stamp = self._stamp()
        if not self._cache_entries:
            self.inner.put(key, start, end, value)
            self._log_and_tell(key, start, end, value, self._rc.timestamp, stamp)
            return
        cache_key = (key, start, end)
        # Remove, then add: flushes follow the order of the latest writes.
        if self._dirty.pop(cache_key, None) is None and self._clean.pop(cache_key, None) is None:
            cached = self._cached_by_key.get(key)
            if cached is None:
                cached = self._cached_by_key[key] = {}
            cached[(start, end)] = None
        self._dirty[cache_key] = (value, self._rc.timestamp, stamp)
        if len(self._dirty) > self._cache_entries:
            self.flush()

    def remove(self, key: Any, start: int, end: int) -> None:
        if self._cache_entries:
            self.put(key, start, end, None)  # CachingSessionStore.remove: a cached None
            return
        # The session's value is the old value of its removal (what
        # KStreamSessionWindowAggregate forwards for a merged-away session).
        old = self.inner.fetch_session(key, start, end) if self.send_old_values else None
        self.inner.remove(key, start, end)
        self._log_and_tell(key, start, end, None, self._rc.timestamp, self._stamp(), old)

    def _write_through(
        self, key: Any, start: int, end: int, value: Any, timestamp: int, stamp: int
    ) -> None:
        inner = self.inner
        old = None
        if value is None or self.send_old_values:
            old = inner.fetch_session(key, start, end)
            if old is None and value is None:
                return  # nothing to delete: not in the store (never reached it, or expired)
        inner.put(key, start, end, value)
        self._log_and_tell(key, start, end, value, timestamp, stamp, old)

    def _log_and_tell(
        self,
        key: Any,
        start: int,
        end: int,
        value: Any,
        timestamp: int,
        stamp: int,
        old: Any = None,
    ) -> None:
        if self._changelog is not None:
            self._changelog.log_session(
                key, start, end, value, timestamp, self._stamp_headers(stamp)
            )
        if self._listener is not None:
            self._listener(key, start, end, value, timestamp, old)

    def flush(self) -> None:
        """Write every cached change through (store, changelog, listener), oldest write
        first; keep what was written as clean entries, drop the tombstones, then evict
        the oldest clean entries beyond the cache's size."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        clean = self._clean
        for cache_key, (value, timestamp, stamp) in dirty.items():
            key, start, end = cache_key
            if value is None:
                self._forget(key, start, end)
            else:
                clean[cache_key] = value
            self._write_through(key, start, end, value, timestamp, stamp)
        excess = len(clean) + len(self._dirty) - self._cache_entries
        while excess > 0:
            cache_key = next(iter(clean))
            del clean[cache_key]
            self._forget(*cache_key)
            excess -= 1

    def _forget(self, key: Any, start: int, end: int) -> None:
        cached = self._cached_by_key.get(key)
        if cached is not None:
            cached.pop((start, end), None)
            if not cached:
                del self._cached_by_key[key]

    def restore(self, key: Any, start: int, end: int, value: Any) -> None:
        self.inner.put(key, start, end, value)

    def close(self) -> None:
        self._clean.clear()
        self._cached_by_key.clear()
        super().close()
