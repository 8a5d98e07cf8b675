"""The stores of stream-stream joins: window stores that retain duplicates, and
the shared store of a left or outer join (Kafka Streams' ListValueStore).

A join window store keeps every record of its side, even several of one key
and timestamp: each put adds one (`retain_duplicates`), nothing is ever
overwritten or deleted, and records leave only when retention expires them.
Like Kafka Streams' RocksDB window store, a put with a null value changes
nothing, not even the store's time.

The shared store of a left or outer join holds the records that found no
partner yet, keyed by (timestamp, side, key) and ordered as Kafka Streams
orders their serialized keys: by timestamp, then the right side before the
left, then the key's bytes. Each key holds the list of its records' values, as
`(is_left, value)`; its changelog carries the whole list at each change.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from typing import Any

from topicflow.serdes import Serde
from topicflow.state.logged.cached_key_value import CachedKeyValueStore
from topicflow.state.stores import KeyValueUpdates, StoreSpec

__all__ = [
    "InMemoryJoinWindowStore",
    "InMemorySortedKeyValueStore",
    "JoinSideSerdes",
    "SharedJoinStore",
    "shared_store_serdes",
]

_NO_RECORDS: list[tuple[int, Any]] = []


class InMemoryJoinWindowStore:
    """A window store that retains duplicates, laid out for a join's lookups: per key,
    its records' timestamps and values in time order (records of one timestamp in
    put order), so a lookup costs a bisection, not a visit of every timestamp in
    the window.

    Records at or before the store's time minus retention are gone, as in
    `InMemoryWindowStore`; the store's time is the latest timestamp put. The keys
    put at each timestamp are kept too, for expiry and scans by time.
    """

    persistent = False

    def __init__(self, name: str, retention_ms: int) -> None:
        self.name = name
        self.retention_ms = retention_ms
        self._by_key: dict[Any, tuple[list[int], list[Any]]] = {}
        self._keys_at: dict[int, list[Any]] = {}  # timestamp -> keys put at it
        self._starts: list[int] = []  # sorted timestamps, for scans and expiry
        self._observed_time = -1

    def put(self, key: Any, value: Any, window_start: int) -> None:
        if value is None:
            return  # nothing to delete: records leave by expiry only
        if window_start > self._observed_time:
            self.observe_stream_time(window_start)
        elif window_start <= self._observed_time - self.retention_ms:
            return  # already expired
        records = self._by_key.get(key)
        if records is None:
            self._by_key[key] = ([window_start], [value])
        else:
            times, values = records
            if window_start >= times[-1]:
                times.append(window_start)
                values.append(value)
            else:  # out of order: after the records of its timestamp put before it
                at = bisect.bisect_right(times, window_start)
                times.insert(at, window_start)
                values.insert(at, value)
        keys = self._keys_at.get(window_start)
        if keys is None:
            self._keys_at[window_start] = [key]
            bisect.insort(self._starts, window_start)
        else:
            keys.append(key)

    def observe_stream_time(self, stream_time: int) -> None:
        if stream_time <= self._observed_time:
            return
        self._observed_time = stream_time
        horizon = stream_time - self.retention_ms
        starts = self._starts
        if not starts or starts[0] > horizon:
            return
        expired = bisect.bisect_right(starts, horizon)
        by_key = self._by_key
        for start in starts[:expired]:
            for key in self._keys_at.pop(start):
                records = by_key.get(key)
                if records is not None:
                    times, values = records
                    gone = bisect.bisect_right(times, horizon)
                    if gone == len(times):
                        del by_key[key]
                    elif gone:
                        del times[:gone], values[:gone]
        del starts[:expired]

    def fetch(self, key: Any, window_start: int) -> Any:
        """The first value of `key` at `window_start` (a window store's point lookup)."""
        found = self.fetch_range(key, window_start, window_start)
        return found[0][1] if found else None

    def fetch_range(self, key: Any, time_from: int, time_to: int) -> list[tuple[int, Any]]:
        """(timestamp, value) of every record of `key` in [time_from, time_to], oldest first."""
        records = self._by_key.get(key)
        if records is None:
            return _NO_RECORDS
        times, values = records
        lo = bisect.bisect_left(times, time_from)
        hi = bisect.bisect_right(times, time_to)
        if lo == hi:
            return _NO_RECORDS
        return list(zip(times[lo:hi], values[lo:hi], strict=True))

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]:
        starts = self._starts
        lo = bisect.bisect_left(starts, time_from)
        hi = bisect.bisect_right(starts, time_to)
        return self._records(starts[lo:hi])

    def all(self) -> Iterator[tuple[Any, int, Any]]:
        return self._records(list(self._starts))

    def _records(self, starts: list[int]) -> Iterator[tuple[Any, int, Any]]:
        for start in starts:
            for key in dict.fromkeys(self._keys_at.get(start, ())):
                for _start, value in self.fetch_range(key, start, start):
                    yield key, start, value

    def approximate_num_entries(self) -> int:
        return sum(len(times) for times, _values in self._by_key.values())

    def flush(self) -> None:
        """Nothing to make durable: the changelog is this store's only copy."""

    def close(self) -> None:
        self._by_key.clear()
        self._keys_at.clear()
        self._starts.clear()


class InMemorySortedKeyValueStore(KeyValueUpdates):
    """A key-value store iterated in serialized-key byte order (Kafka Streams'
    in-memory store is a sorted map of bytes), as the shared join store needs."""

    persistent = False

    def __init__(self, name: str, key_serde: Serde[Any]) -> None:
        self.name = name
        self._serialize_key = key_serde.serialize
        self._data: dict[bytes, tuple[Any, Any]] = {}  # key bytes -> (key, value)
        self._order: list[bytes] = []

    def get(self, key: Any) -> Any:
        entry = self._data.get(self._serialize_key(key) or b"")
        return None if entry is None else entry[1]

    def put(self, key: Any, value: Any) -> None:
        key_bytes = self._serialize_key(key) or b""
        if value is None:
            if self._data.pop(key_bytes, None) is not None:
                del self._order[bisect.bisect_left(self._order, key_bytes)]
            return
        if key_bytes not in self._data:
            bisect.insort(self._order, key_bytes)
        self._data[key_bytes] = (key, value)

    def all(self) -> Iterator[tuple[Any, Any]]:
        """Every (key, value) in key byte order, lazily: a join's scan mostly stops
        after a few keys, and deletes the keys it has passed as it goes."""
        order, data = self._order, self._data
        at = 0
        while at < len(order):
            key_bytes = order[at]
            yield data[key_bytes]
            # Where the next key is now, whatever was deleted meanwhile.
            at = bisect.bisect_right(order, key_bytes)

    def approximate_num_entries(self) -> int:
        return len(self._data)

    def flush(self) -> None:
        """Nothing to make durable: the changelog is this store's only copy."""

    def close(self) -> None:
        self._data.clear()
        self._order.clear()


class SharedJoinStore(CachedKeyValueStore):
    """The shared store of a left or outer join: each key's value is a list, each
    put adds to it (Kafka Streams' ListValueStore); never cached."""

    def add(self, key: Any, value: Any) -> None:
        """Append `value` to the list of `key`, and log the whole list."""
        inner = self.inner
        values = inner.get(key)
        if values is None:
            values = [value]
        else:
            values.append(value)
        inner.put(key, values)
        if self._changelog is not None:
            self._changelog.log(key, values, self._rc.timestamp, self._stamp_headers(self._stamp()))

    def remove(self, key: Any) -> None:
        """Drop the whole list of `key` (a blind delete)."""
        self.inner.put(key, None)
        if self._changelog is not None:
            self._changelog.log(key, None, self._rc.timestamp, self._stamp_headers(self._stamp()))

    def remove_if_present(self, key: Any) -> None:
        if self.inner.get(key) is not None:
            self.remove(key)

    def flush(self) -> None:
        """Nothing cached: every change went through at once."""


# The shared store's key: (timestamp, is_left, key), laid out as Kafka Streams'
# TimestampedKeyAndJoinSide: the timestamp (8 bytes, big-endian), the side
# (1 left, 0 right), the key's bytes.
_TIMESTAMP = struct.Struct(">q")
_COUNT = struct.Struct(">i")


class JoinSideSerdes(Serde[Any]):
    """The shared store's value serde as the DSL declares it: the left and right
    value serdes, either None for the default; resolved by `shared_store_serdes`."""

    __slots__ = ("left", "right")
    left: Serde[Any] | None
    right: Serde[Any] | None

    def __init__(self, left: Serde[Any] | None, right: Serde[Any] | None) -> None:
        super().__init__("JoinSides", _unresolved, _unresolved)
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "right", right)


def _unresolved(data: Any) -> Any:
    raise TypeError("the join's shared store serdes are resolved by the state manager")


def shared_store_serdes(
    spec: StoreSpec, key_serde: Serde[Any], default_value_serde: Serde[Any]
) -> tuple[Serde[Any], Serde[Any]]:
    """The serdes of a shared join store's keys and value lists, from the join's."""
    sides = spec.value_serde
    left = right = default_value_serde
    if isinstance(sides, JoinSideSerdes):
        left = sides.left or default_value_serde
        right = sides.right or default_value_serde
    serialize_key, deserialize_key = key_serde.serialize, key_serde.deserialize
    pack, unpack = _TIMESTAMP.pack, _TIMESTAMP.unpack_from

    def key_to_bytes(key: Any) -> bytes | None:
        timestamp, is_left, inner = key
        return pack(timestamp) + (b"\x01" if is_left else b"\x00") + (serialize_key(inner) or b"")

    def key_from_bytes(data: bytes | None) -> Any:
        if data is None:
            return None
        return unpack(data)[0], data[8] == 1, deserialize_key(data[9:])

    serialize_left, serialize_right = left.serialize, right.serialize
    deserialize_left, deserialize_right = left.deserialize, right.deserialize
    pack_count, unpack_count = _COUNT.pack, _COUNT.unpack_from

    def values_to_bytes(values: Any) -> bytes | None:
        # A count, then each value: its length, its side, its bytes.
        if values is None:
            return None
        parts = [pack_count(len(values))]
        for is_left, value in values:
            data = (serialize_left(value) if is_left else serialize_right(value)) or b""
            parts.append(pack_count(len(data) + 1))
            parts.append(b"\x01" if is_left else b"\x00")
            parts.append(data)
        return b"".join(parts)

    def values_from_bytes(data: bytes | None) -> Any:
        if data is None:
            return None
        (count,) = unpack_count(data)
        values = []
        offset = 4
        for _ in range(count):
            (size,) = unpack_count(data, offset)
            is_left = data[offset + 4] == 1
            raw = data[offset + 5 : offset + 4 + size]
            values.append((is_left, deserialize_left(raw) if is_left else deserialize_right(raw)))
            offset += 4 + size
        return values

    return (
        Serde(f"TimestampedKeyAndJoinSide({key_serde.name})", key_to_bytes, key_from_bytes),
        Serde(f"LeftOrRightValues({left.name}, {right.name})", values_to_bytes, values_from_bytes),
    )
