"""The cached session store: Kafka Streams' CachingSessionStore over a changelog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from topicflow.state.logged.cached_store import CachedStore
from topicflow.state.logged.changelog import ChangelogWriter
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import RecordContext

__all__ = ["CachedSessionStore", "SessionFlushListener"]

# (key, session start, session end, value, timestamp, old value) of a change that
# reached the store.
SessionFlushListener = Callable[[Any, int, int, Any, int, Any], None]


class CachedSessionStore(CachedStore):
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
