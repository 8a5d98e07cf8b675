"""State stores: what processors read and write, and how each is declared.

A store is declared once in the topology as a `StoreSpec` (name, kind, serdes,
retention, logging, caching) and instantiated per task. Every store is backed
by a changelog topic `{application_id}-{name}-changelog` unless logging is
disabled: each write-through is sent there, keyed by the store key, and a task
taking over a partition rebuilds the store by reading it back.

The in-memory stores keep Python objects, not bytes: serdes run only when a
change is logged or restored.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from sys import intern
from typing import Any, Literal, Protocol

from topicflow.serdes import Serde

StoreKind = Literal["key_value", "window", "session"]

# A timestamped value on disk, as Kafka Streams' ValueAndTimestampSerializer
# lays it out: the timestamp (8 bytes, big-endian), then the value's bytes.
TIMESTAMP_PREFIX = struct.Struct(">q")
# In a persistent timestamped store's folder: its values carry their timestamps.
# A folder without it was written before, and is restored from the changelog.
TIMESTAMPED_MARKER = "TOPICFLOW_TIMESTAMPED"


def TimestampedSerde(value_serde: Serde[Any]) -> Serde[Any]:  # noqa: N802 (a Serde, named so)
    """(value, timestamp) to and from bytes, for persistent timestamped stores."""
    serialize, deserialize = value_serde.serialize, value_serde.deserialize
    pack, unpack = TIMESTAMP_PREFIX.pack, TIMESTAMP_PREFIX.unpack_from

    def to_bytes(entry: Any) -> bytes | None:
        if entry is None:
            return None
        return pack(entry[1]) + (serialize(entry[0]) or b"")

    def from_bytes(data: bytes | None) -> Any:
        if data is None:
            return None
        return deserialize(data[8:]), unpack(data)[0]

    return Serde(f"Timestamped({value_serde.name})", to_bytes, from_bytes)


@dataclass(frozen=True)
class StoreSpec:
    """How to build a store for each task."""

    name: str
    kind: StoreKind
    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    persistent: bool = False
    logging: bool = True
    caching: bool = True
    # Kafka Streams' timestamped stores (KIP-258): each value is kept with the
    # timestamp of the record that last set it, as `(value, timestamp)` in the
    # inner store; the DSL's aggregations and tables use them.
    timestamped: bool = False
    # Window and session stores: how long a window is kept after its start
    # (after its end for sessions), in stream time.
    retention_ms: int = 0
    window_size_ms: int = 0
    # Stream-stream joins (see `topicflow/state/join_stores.py`): a window store
    # whose every put adds a record, or the key-value store shared by both sides
    # of a left or outer join, whose values are lists.
    retain_duplicates: bool = False
    # Whether idempotent state keeps the store exact when input is replayed after a
    # crash (runtime/replay.py). False for a stream-stream join's stores (a replay
    # adds its records to the windows again) and a suppression buffer: idempotent
    # state then refuses the topology at start.
    replay_safe: bool = True
    changelog_config: dict[str, str] = field(default_factory=dict)

    def changelog_topic(self, application_id: str) -> str:
        return f"{application_id}-{self.name}-changelog"


class KeyValueStore(Protocol):
    name: str

    def get(self, key: Any) -> Any: ...
    def put(self, key: Any, value: Any) -> None: ...
    def put_if_absent(self, key: Any, value: Any) -> Any: ...
    def delete(self, key: Any) -> Any: ...
    def all(self) -> Iterator[tuple[Any, Any]]: ...
    def approximate_num_entries(self) -> int: ...


class KeyValueUpdates:
    """`put_if_absent` and `delete` in terms of a key-value store's own `get` and `put`
    (a store with a faster way overrides them)."""

    def get(self, key: Any) -> Any:
        raise NotImplementedError

    def put(self, key: Any, value: Any) -> None:
        raise NotImplementedError

    def put_if_absent(self, key: Any, value: Any) -> Any:
        existing = self.get(key)
        if existing is None:
            self.put(key, value)
        return existing

    def delete(self, key: Any) -> Any:
        existing = self.get(key)
        self.put(key, None)
        return existing


class WindowStore(Protocol):
    name: str

    def fetch(self, key: Any, window_start: int) -> Any: ...
    def put(self, key: Any, value: Any, window_start: int) -> None: ...
    def fetch_range(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]: ...
    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]: ...
    def all(self) -> Iterator[tuple[Any, int, Any]]: ...


class InMemoryKeyValueStore:
    """A dict."""

    persistent = False

    def __init__(self, name: str) -> None:
        self.name = name
        self._data: dict[Any, Any] = {}

    def get(self, key: Any) -> Any:
        return self._data.get(key)

    def put(self, key: Any, value: Any) -> None:
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value

    def put_if_absent(self, key: Any, value: Any) -> Any:
        existing = self._data.get(key)
        if existing is None:
            self.put(key, value)
        return existing

    def delete(self, key: Any) -> Any:
        return self._data.pop(key, None)

    def all(self) -> Iterator[tuple[Any, Any]]:
        return iter(list(self._data.items()))

    def approximate_num_entries(self) -> int:
        return len(self._data)

    def flush(self) -> None:
        """Nothing to make durable: the changelog is this store's only copy."""

    def close(self) -> None:
        self._data.clear()


class InMemoryWindowStore:
    """Windows by start time, each a dict of key -> value.

    Expiry drops whole windows: a window whose start is older than stream time
    minus retention is gone, so memory follows the keys per retained window,
    not the records seen.
    """

    persistent = False

    def __init__(self, name: str, retention_ms: int) -> None:
        self.name = name
        self.retention_ms = retention_ms
        self._windows: dict[int, dict[Any, Any]] = {}
        self._starts: list[int] = []  # sorted window starts, for range scans and expiry
        self._observed_time = -1

    def fetch(self, key: Any, window_start: int) -> Any:
        window = self._windows.get(window_start)
        return None if window is None else window.get(key)

    def put(self, key: Any, value: Any, window_start: int) -> None:
        window = self._windows.get(window_start)
        if window is None:
            # Like Kafka's window stores, writing advances the store's own notion of
            # time, so stores written through the Processor API expire too.
            if window_start > self._observed_time:
                self.observe_stream_time(window_start)
            if window_start <= self._observed_time - self.retention_ms:
                return  # already expired
            if value is None:
                return
            window = self._windows[window_start] = {}
            bisect.insort(self._starts, window_start)
        if value is None:
            window.pop(key, None)
        elif type(key) is str and key not in window:
            # A word is a new str object in every record that carries it: one
            # object per key across windows, not one per window (the Aggregator
            # at 100k distinct words: about 10 windows per word).
            window[intern(key)] = value
        else:
            window[key] = value

    def observe_stream_time(self, stream_time: int) -> None:
        """Drop the windows that retention no longer covers."""
        if stream_time <= self._observed_time:
            return
        self._observed_time = stream_time
        horizon = stream_time - self.retention_ms
        starts = self._starts
        expired = 0
        while expired < len(starts) and starts[expired] <= horizon:
            del self._windows[starts[expired]]
            expired += 1
        if expired:
            del starts[:expired]

    def fetch_range(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]:
        """(window start, value) of `key` for windows starting in [time_from, time_to]."""
        starts = self._starts
        lo = bisect.bisect_left(starts, time_from)
        hi = bisect.bisect_right(starts, time_to)
        for start in starts[lo:hi]:
            value = self._windows[start].get(key)
            if value is not None:
                yield start, value

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]:
        """(key, window start, value) for every window starting in [time_from, time_to]."""
        starts = self._starts
        lo = bisect.bisect_left(starts, time_from)
        hi = bisect.bisect_right(starts, time_to)
        for start in starts[lo:hi]:
            for key, value in list(self._windows[start].items()):
                yield key, start, value

    def all(self) -> Iterator[tuple[Any, int, Any]]:
        for start in list(self._starts):
            for key, value in list(self._windows[start].items()):
                yield key, start, value

    def window_count(self) -> int:
        return len(self._starts)

    def approximate_num_entries(self) -> int:
        return sum(len(w) for w in self._windows.values())

    def flush(self) -> None:
        """Nothing to make durable: the changelog is this store's only copy."""

    def close(self) -> None:
        self._windows.clear()
        self._starts.clear()
