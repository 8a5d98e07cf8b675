"""The cached window store: Kafka Streams' CachingWindowStore over a changelog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from topicflow.state.logged.cached_store import CachedStore
from topicflow.state.logged.changelog import ChangelogWriter
from topicflow.state.stores import InMemoryWindowStore, StoreSpec
from topicflow.topology.nodes import RecordContext

__all__ = ["CachedWindowStore", "WindowFlushListener"]

# (key, window start, value, timestamp, old value) of a change that reached the store.
WindowFlushListener = Callable[[Any, int, Any, int, Any], None]


def _write_order(item: tuple[tuple[Any, int, int, int], Any, int]) -> int:
    return item[0][3]


class CachedWindowStore(CachedStore):
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
        # What a flush wrote, still readable, as Kafka Streams' cache keeps flushed
        # entries (clean) until it evicts them: a window the inner store has expired
        # may be read from here. Only a cogroup shows it, whose streams' records
        # expire windows another stream, behind in time, still updates. Window
        # start -> key -> (value, timestamp); the oldest windows go first.
        self._clean: dict[int, dict[Any, tuple[Any, int]]] = {}
        self._clean_count = 0

    def observe_stream_time(self, stream_time: int) -> None:
        self.inner.observe_stream_time(stream_time)

    def fetch(self, key: Any, window_start: int) -> Any:
        window = self._dirty.get(window_start)
        if window is not None:
            cached = window.get(key)
            if cached is not None:
                return cached[0]
        flushed = self._clean.get(window_start)
        if flushed is not None:
            entry = flushed.get(key)
            if entry is not None:
                return entry[0]
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
        flushed = self._clean.get(window_start)
        if flushed is not None:
            entry = flushed.get(key)
            if entry is not None:
                return None if entry[0] is None else entry
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
        clean = self._clean
        for (value, timestamp, stamp, _seq), key, window_start in entries:
            flushed = clean.get(window_start)
            if flushed is None:
                flushed = clean[window_start] = {}
            if key not in flushed:
                self._clean_count += 1
            flushed[key] = (value, timestamp)
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
        while self._clean_count > self._cache_entries:
            self._clean_count -= len(clean.pop(min(clean)))

    def close(self) -> None:
        self._clean.clear()
        self._clean_count = 0
        super().close()

    def restore(self, key: Any, window_start: int, value: Any, timestamp: int) -> None:
        """Apply one changelog record: its timestamp is the value's (timestamped stores)."""
        self.inner.put(key, self._stored(value, timestamp), window_start)
