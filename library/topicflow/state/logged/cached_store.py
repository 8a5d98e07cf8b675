"""What every cached store shares: `CachedStore`, the base of the three store kinds.

The inner store, the changelog, the record cache's size, the flush listener
through which an aggregation forwards its results, timestamped values
(KIP-258), and the flush stamps of idempotent state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.brokers.base import Headers
from topicflow.state.flush_stamp import flush_stamp
from topicflow.state.logged.changelog import ChangelogWriter
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import RecordContext

__all__ = ["CachedStore"]


def _no_serializer(key: Any) -> bytes | None:
    raise TypeError("store key serializer not set")


class CachedStore:
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
        # Its value serializer (set likewise): what a suppression buffer counts bytes by.
        self.serialize_value: Callable[[Any], bytes | None] = _no_serializer
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
