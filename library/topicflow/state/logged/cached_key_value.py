"""The cached key-value store: Kafka Streams' CachingKeyValueStore over a changelog."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from topicflow.state.logged.cached_store import CachedStore
from topicflow.state.stores import KeyValueUpdates

__all__ = ["CachedKeyValueStore", "FlushListener"]

# (key, value, timestamp, old value) of a change that reached the store, for the
# listener; the old value is None unless the store sends old values.
FlushListener = Callable[[Any, Any, int, Any], None]


class CachedKeyValueStore(CachedStore, KeyValueUpdates):
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
