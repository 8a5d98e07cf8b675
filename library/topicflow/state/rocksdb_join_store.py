"""A stream-stream join's window store in RocksDB: every put adds a record.

Kafka Streams' RocksDB window store with retainDuplicates, for the two sides
of a stream-stream join (topicflow/dsl/stream_stream_join.py); the in-memory
twin is in topicflow/state/join_stores.py. It shares the RocksDB setup of
topicflow/state/rocksdb.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

# topicflow.state.rocksdb, imported first wherever stores are built, says which
# extra to install when rocksdict is missing.
from rocksdict import ReadOptions, WriteBatch

from topicflow.errors import StreamsException
from topicflow.serdes import Serde
from topicflow.state.rocksdb import (
    _LONG_MAX,
    _LONG_MIN,
    _SIGN,
    _START,
    _START_SIZE,
    MIN_PURGE_INTERVAL_MS,
    _RocksDBTimedStore,
    _start_bytes,
)

__all__ = ["RocksDBJoinWindowStore"]

_SEQUENCE = struct.Struct(">I")
_SEQUENCE_MASK = 0xFFFFFFFF
# In a join window store's folder: the last sequence number used.
_SEQUENCE_FILE = "TOPICFLOW_SEQUENCE"
# A join entry's key ends with the record's timestamp and its sequence number.
_ENTRY_SUFFIX_SIZE = _START_SIZE + _SEQUENCE.size


class RocksDBJoinWindowStore(_RocksDBTimedStore):
    """A window store on disk that retains duplicates, for stream-stream joins; see
    `topicflow.state.join_stores.InMemoryJoinWindowStore` for the semantics.

    Laid out as Kafka Streams' segmented window stores, for a join's lookups:
    each entry's key is its segment (a span of half the retention, a minute at
    least), the serialized key, the timestamp and a sequence number (4 bytes,
    wrapping), so that looking a key up over a window is one range scan per
    segment it spans (three at most), records of one key and timestamp stay in put
    order, and expiry deletes whole segments at once. Records expired but not
    yet deleted are hidden from reads.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        retention_ms: int,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
    ) -> None:
        super().__init__(name, path, retention_ms, key_serde, value_serde)
        self._segment_ms = max(retention_ms // 2, MIN_PURGE_INTERVAL_MS)
        self._purged_below = _LONG_MIN  # segments below this one are deleted
        # Where the sequence continues after a reopen: records put later must sort
        # after the ones on disk (Kafka Streams restarts at 0, and may not).
        self._sequence_file = path / _SEQUENCE_FILE
        try:
            self._sequence = int(self._sequence_file.read_text())
        except (OSError, ValueError):
            self._sequence = 0

    def _entry(self, key_bytes: bytes, timestamp: int) -> bytes:
        self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
        return (
            _start_bytes(timestamp // self._segment_ms)
            + key_bytes
            + _start_bytes(timestamp)
            + _SEQUENCE.pack(self._sequence)
        )

    def put(self, key: Any, value: Any, window_start: int) -> None:
        if value is None:
            return  # nothing to delete; the store's time does not move (as Kafka Streams)
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            raise StreamsException(f"store {self.name!r}: a key cannot be null")
        if window_start > self._observed_time:
            self.observe_stream_time(window_start)
        elif window_start <= self._horizon:
            return  # already expired
        self._db.put(self._entry(key_bytes, window_start), self._serialize_value(value))

    def observe_stream_time(self, stream_time: int) -> None:
        """Hide what retention no longer covers; delete the segments wholly expired."""
        if stream_time <= self._observed_time:
            return
        self._observed_time = stream_time
        horizon = self._horizon = stream_time - self.retention_ms
        # Segment s holds [s * size, (s + 1) * size): expired whole when its last
        # millisecond is at or before the horizon.
        expired_below = (horizon + 1) // self._segment_ms
        if expired_below > self._purged_below:
            self._db.delete_range(
                _start_bytes(_LONG_MIN), _start_bytes(expired_below), self._write_options
            )
            self._purged_below = expired_below

    def fetch(self, key: Any, window_start: int) -> Any:
        found = self.fetch_range(key, window_start, window_start)
        return found[0][1] if found else None

    def fetch_range(self, key: Any, time_from: int, time_to: int) -> list[tuple[int, Any]]:
        """(timestamp, value) of every record of `key` in [time_from, time_to], in order."""
        time_from = max(time_from, self._horizon + 1)
        if time_to < time_from:
            return []
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            return []
        size = self._segment_ms
        entry_size = _START_SIZE + len(key_bytes) + _ENTRY_SUFFIX_SIZE
        deserialize_value = self._deserialize_value
        unpack_start = _START.unpack_from
        found = []
        for segment in range(time_from // size, time_to // size + 1):
            prefix = _start_bytes(segment) + key_bytes
            read_options = ReadOptions()
            if time_to < _LONG_MAX:
                read_options.set_iterate_upper_bound(prefix + _start_bytes(time_to + 1))
            items = cast(
                "Iterator[tuple[bytes, bytes]]",
                self._db.items(from_key=prefix + _start_bytes(time_from), read_opt=read_options),
            )
            for entry_key, data in items:
                # A longer key whose bytes start with this one's is another key.
                if len(entry_key) == entry_size and entry_key.startswith(prefix):
                    timestamp = unpack_start(entry_key, entry_size - _ENTRY_SUFFIX_SIZE)[0] - _SIGN
                    found.append((timestamp, deserialize_value(data)))
        return found

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]:
        """(key, timestamp, value) of every record in [time_from, time_to], by timestamp."""
        return iter(sorted(self._records(time_from, time_to), key=_by_timestamp))

    def all(self) -> Iterator[tuple[Any, int, Any]]:
        return self.fetch_all(_LONG_MIN, _LONG_MAX)

    def _records(self, time_from: int, time_to: int) -> list[tuple[Any, int, Any]]:
        time_from = max(time_from, self._horizon + 1)
        deserialize_key, deserialize_value = self._deserialize_key, self._deserialize_value
        unpack_start = _START.unpack_from
        found = []
        for entry_key, data in cast("Iterator[tuple[bytes, bytes]]", self._db.items()):
            end = len(entry_key) - _ENTRY_SUFFIX_SIZE
            timestamp = unpack_start(entry_key, end)[0] - _SIGN
            if time_from <= timestamp <= time_to:
                key = deserialize_key(entry_key[_START_SIZE:end])
                found.append((key, timestamp, deserialize_value(data)))
        return found

    def approximate_num_entries(self) -> int:
        return self._estimate_num_keys()

    def restore_batch(self, records: list[tuple[bytes, int, bytes | None]]) -> None:
        """Apply join window changelog records in one write batch; tombstones change nothing."""
        batch = WriteBatch(raw_mode=True)
        observed, horizon, retention = self._observed_time, self._horizon, self.retention_ms
        for key_bytes, window_start, value in records:
            if value is None:
                continue
            if window_start > observed:
                observed = window_start
                horizon = observed - retention
            elif window_start <= horizon:
                continue
            batch.put(self._entry(key_bytes, window_start), value)
        self._db.write(batch, self._write_options)
        self.observe_stream_time(observed)

    def flush(self) -> None:
        super().flush()
        if not self._closed:
            self._sequence_file.write_text(str(self._sequence))

    def close(self) -> None:
        if not self._closed:
            self._sequence_file.write_text(str(self._sequence))
        super().close()


def _by_timestamp(record: tuple[Any, int, Any]) -> int:
    return record[1]
