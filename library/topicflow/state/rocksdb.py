"""Persistent state stores on RocksDB (through `rocksdict`), as Kafka Streams' RocksDBStore.

They behave as the in-memory stores of `stores.py` (same methods, same results)
but keep bytes on disk: keys and values pass through the store's serdes on
every read and write, and iteration follows the serialized keys' byte order.

Durability comes from the changelog, not from RocksDB. Every write skips
RocksDB's write-ahead log and nothing is fsynced: a store the task did not close
cleanly has no checkpoint, so the state manager wipes it and restores it from
the changelog, which makes the WAL pure overhead (it doubles the bytes written
and, with sync, costs a disk flush per write). Kafka Streams does the same.
Writes since the last memtable flush live only in memory until `flush()` or
`close()`, which is why a checkpoint may be written only after one of them.

Memory stays modest on a small machine: one 64 MB block cache shared by every
store of the process, 32 MB memtables (two at most per store before writes
wait for a flush), two background threads per store.

Window stores key each entry by its window start (8 bytes, big-endian, sign bit
flipped so that byte order is numeric order) followed by the serialized key: a
time range is one contiguous key range, so `fetch_all` is a single scan and
expiry a single `delete_range`. The window starts present are also kept in a
sorted list in memory (one entry per window, not per key), which makes
`observe_stream_time` a comparison per record and `fetch_range` one multi-get.
"""

from __future__ import annotations

import bisect
import struct
import weakref
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

from topicflow.errors import StreamsException
from topicflow.extras import missing_extra

try:
    from rocksdict import (
        BlockBasedOptions,
        Cache,
        DBCompressionType,
        Options,
        Rdict,
        ReadOptions,
        WriteBatch,
        WriteOptions,
    )
except ModuleNotFoundError as error:
    raise missing_extra("rocksdb", "a persistent (RocksDB) state store", error) from error

from topicflow.serdes import Serde

__all__ = ["RocksDBKeyValueStore", "RocksDBWindowStore"]

WRITE_BUFFER_BYTES = 32 * 1024 * 1024
MAX_WRITE_BUFFERS = 2
BLOCK_CACHE_BYTES = 64 * 1024 * 1024
BACKGROUND_JOBS = 2
# Kafka Streams' minimum segment interval: expired windows are deleted from disk
# at most once per this much stream time (they are hidden from reads at once).
MIN_PURGE_INTERVAL_MS = 60_000

_LONG_MIN = -(1 << 63)
_LONG_MAX = (1 << 63) - 1
_SIGN = 1 << 63
_START = struct.Struct(">Q")
_START_SIZE = _START.size

_block_cache: Cache | None = None


def _shared_block_cache() -> Cache:
    global _block_cache
    if _block_cache is None:
        _block_cache = Cache(BLOCK_CACHE_BYTES)
    return _block_cache


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(MAX_WRITE_BUFFERS)
    options.set_max_background_jobs(BACKGROUND_JOBS)
    options.set_compression_type(DBCompressionType.lz4())
    options.set_use_fsync(False)
    options.set_keep_log_file_num(2)
    options.set_max_log_file_size(1024 * 1024)
    table = BlockBasedOptions()
    table.set_block_cache(_shared_block_cache())
    # Point lookups of absent keys (the first record of every new aggregation key)
    # mostly stop at the filter instead of reading blocks.
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options


def _write_options() -> WriteOptions:
    write_options = WriteOptions()
    # The changelog is the durable log (see the module docstring): no WAL, no sync.
    # rocksdict's stub declares disable_wal a method; it is a property at runtime.
    setattr(write_options, "disable_wal", True)  # noqa: B010
    write_options.sync = False
    return write_options


def _open(name: str, path: Path) -> tuple[Rdict, WriteOptions]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        db = Rdict(str(path), _options())
    except Exception as error:  # rocksdict raises a bare Exception on I/O errors
        raise StreamsException(f"store {name!r}: cannot open RocksDB at {path}: {error}") from error
    write_options = _write_options()
    db.set_write_options(write_options)
    return db, write_options


class _RocksDBStore:
    """What both stores share: the database, its iterators, flush and close."""

    persistent = True

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._db, self._write_options = _open(name, path)
        self._closed = False
        # Open iterators keep the database open (and its LOCK file held) after
        # close(); they are closed with the store so that it can be reopened.
        self._iterators: weakref.WeakSet[Generator[Any, None, None]] = weakref.WeakSet()

    def _track(self, iterator: Generator[Any, None, None]) -> Generator[Any, None, None]:
        self._iterators.add(iterator)
        return iterator

    def _estimate_num_keys(self) -> int:
        return self._db.property_int_value("rocksdb.estimate-num-keys") or 0

    def flush(self) -> None:
        """Write the memtables to disk: without a WAL, writes are durable only after this."""
        if not self._closed:
            self._db.flush()

    def close(self) -> None:
        """Flush and close the database; iterators still open end. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for iterator in list(self._iterators):
            iterator.close()
        self._iterators.clear()
        self._db.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {str(self.path)!r})"


class RocksDBKeyValueStore(_RocksDBStore):
    """A key-value store on disk; see `InMemoryKeyValueStore` for the semantics."""

    def __init__(
        self, name: str, path: Path, key_serde: Serde[Any], value_serde: Serde[Any]
    ) -> None:
        super().__init__(name, path)
        self._serialize_key = key_serde.serialize
        self._deserialize_key = key_serde.deserialize
        self._serialize_value = value_serde.serialize
        self._deserialize_value = value_serde.deserialize

    def get(self, key: Any) -> Any:
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            return None
        data = self._db.get(key_bytes)
        return None if data is None else self._deserialize_value(data)

    def put(self, key: Any, value: Any) -> None:
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            raise StreamsException(f"store {self.name!r}: a key cannot be null")
        if value is None:
            self._db.delete(key_bytes)
        else:
            self._db.put(key_bytes, self._serialize_value(value))

    def put_if_absent(self, key: Any, value: Any) -> Any:
        existing = self.get(key)
        if existing is None:
            self.put(key, value)
        return existing

    def delete(self, key: Any) -> Any:
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            return None
        data = self._db.get(key_bytes)
        if data is None:
            return None
        self._db.delete(key_bytes)
        return self._deserialize_value(data)

    def all(self) -> Iterator[tuple[Any, Any]]:
        """Every (key, value), in serialized-key byte order, as of this call."""
        # items() takes its snapshot now, as the in-memory store copies its dict now.
        return self._track(self._decode(self._db.items()))

    def _decode(self, items: Iterator[tuple[Any, Any]]) -> Generator[tuple[Any, Any], None, None]:
        deserialize_key, deserialize_value = self._deserialize_key, self._deserialize_value
        for key_bytes, value_bytes in items:
            yield deserialize_key(key_bytes), deserialize_value(value_bytes)

    def approximate_num_entries(self) -> int:
        """RocksDB's estimate: exact after a flush without overwrites, rough otherwise."""
        return self._estimate_num_keys()

    def restore_batch(self, pairs: list[tuple[bytes | None, bytes | None]]) -> None:
        """Apply changelog records as they are on the topic, in one write batch.

        Expects the records' serialized key and value bytes (value None: a
        tombstone, the key is deleted): the changelog key is the store key
        serialized by the same serde, so restoring skips deserializing and
        reserializing every record. Records without a key are skipped.
        """
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        for key, value in pairs:
            if key is None:
                continue
            if value is None:
                delete(key)
            else:
                put(key, value)
        self._db.write(batch, self._write_options)


def _start_bytes(window_start: int) -> bytes:
    return _START.pack(window_start + _SIGN)


class _RocksDBTimedStore(_RocksDBStore):
    """What the window stores share: serdes, and a retention in stream time."""

    def __init__(
        self,
        name: str,
        path: Path,
        retention_ms: int,
        key_serde: Serde[Any],
        value_serde: Serde[Any],
    ) -> None:
        super().__init__(name, path)
        self.retention_ms = retention_ms
        self._serialize_key = key_serde.serialize
        self._deserialize_key = key_serde.deserialize
        self._serialize_value = value_serde.serialize
        self._deserialize_value = value_serde.deserialize
        self._observed_time = -1
        # What starts at or before the horizon is expired.
        self._horizon = self._observed_time - retention_ms


class RocksDBWindowStore(_RocksDBTimedStore):
    """A window store on disk; see `InMemoryWindowStore` for the semantics.

    Expired windows disappear from every read as soon as stream time passes
    them, as in memory; their entries are deleted from disk (one range
    deletion) when stream time has advanced by half the retention, a minute at
    least, since the last deletion, as Kafka Streams drops whole segments.
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
        self._purge_interval = max(retention_ms // 2, MIN_PURGE_INTERVAL_MS)
        self._purge_at = _LONG_MIN  # the first expiry deletes at once
        self._purged = True  # nothing expired but still on disk
        self._starts = self._stored_starts()  # sorted, the windows not expired
        self._start_set = set(self._starts)

    def _stored_starts(self) -> list[int]:
        """The window starts on disk: one seek per window, not a scan of every entry."""
        starts = []
        iterator = self._db.iter()
        iterator.seek_to_first()
        while iterator.valid():
            start = _START.unpack_from(iterator.key())[0] - _SIGN
            starts.append(start)
            if start == _LONG_MAX:
                break
            iterator.seek(_start_bytes(start + 1))
        del iterator
        return starts

    def fetch(self, key: Any, window_start: int) -> Any:
        if window_start <= self._horizon:
            return None
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            return None
        data = self._db.get(_start_bytes(window_start) + key_bytes)
        return None if data is None else self._deserialize_value(data)

    def put(self, key: Any, value: Any, window_start: int) -> None:
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            raise StreamsException(f"store {self.name!r}: a key cannot be null")
        if window_start not in self._start_set:
            # As the in-memory store: writing advances the store's own time.
            if window_start > self._observed_time:
                self.observe_stream_time(window_start)
            if window_start <= self._horizon:
                return  # already expired
            if value is None:
                return
            self._start_set.add(window_start)
            bisect.insort(self._starts, window_start)
        if value is None:
            self._db.delete(_start_bytes(window_start) + key_bytes)
        else:
            self._db.put(_start_bytes(window_start) + key_bytes, self._serialize_value(value))

    def observe_stream_time(self, stream_time: int) -> None:
        """Expire the windows that retention no longer covers; cheap when nothing expires."""
        if stream_time <= self._observed_time:
            return
        self._observed_time = stream_time
        horizon = self._horizon = stream_time - self.retention_ms
        starts = self._starts
        if starts and starts[0] <= horizon:
            expired = bisect.bisect_right(starts, horizon)
            self._start_set.difference_update(starts[:expired])
            del starts[:expired]
            self._purged = False
        if not self._purged and horizon >= self._purge_at:
            self._purge(horizon)

    def _purge(self, horizon: int) -> None:
        end = _start_bytes(horizon + 1) if horizon < _LONG_MAX else b"\xff" * (_START_SIZE + 1)
        self._db.delete_range(_start_bytes(_LONG_MIN), end, self._write_options)
        self._purged = True
        self._purge_at = horizon + self._purge_interval

    def fetch_range(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[int, Any]]:
        """(window start, value) of `key` for windows starting in [time_from, time_to]."""
        starts = self._starts
        selected = starts[
            bisect.bisect_left(starts, time_from) : bisect.bisect_right(starts, time_to)
        ]
        return self._track(self._fetch_range(key, selected))

    def _fetch_range(self, key: Any, starts: list[int]) -> Generator[tuple[int, Any], None, None]:
        if not starts:
            return
        key_bytes = self._serialize_key(key)
        if key_bytes is None:
            return
        found = self._db.get([_start_bytes(start) + key_bytes for start in starts])
        deserialize_value = self._deserialize_value
        for start, data in zip(starts, found or (), strict=True):
            if data is not None:
                yield start, deserialize_value(data)

    def fetch_all(self, time_from: int, time_to: int) -> Iterator[tuple[Any, int, Any]]:
        """(key, window start, value) for every window starting in [time_from, time_to]."""
        return self._track(self._scan(time_from, time_to))

    def all(self) -> Iterator[tuple[Any, int, Any]]:
        return self._track(self._scan(_LONG_MIN, _LONG_MAX))

    def _scan(self, time_from: int, time_to: int) -> Generator[tuple[Any, int, Any], None, None]:
        time_from = max(time_from, self._horizon + 1, _LONG_MIN)
        if time_to < time_from:
            return
        read_options = ReadOptions()
        if time_to < _LONG_MAX:
            read_options.set_iterate_upper_bound(_start_bytes(time_to + 1))
        # Raw mode: keys and values are bytes (rocksdict's stub types them loosely).
        items = cast(
            "Iterator[tuple[bytes, bytes]]",
            self._db.items(from_key=_start_bytes(time_from), read_opt=read_options),
        )
        deserialize_key, deserialize_value = self._deserialize_key, self._deserialize_value
        unpack_start = _START.unpack_from
        start_bytes, start = b"", 0
        for entry_key, data in items:
            if entry_key[:_START_SIZE] != start_bytes:
                start_bytes = entry_key[:_START_SIZE]
                start = unpack_start(start_bytes)[0] - _SIGN
            yield deserialize_key(entry_key[_START_SIZE:]), start, deserialize_value(data)

    def window_count(self) -> int:
        return len(self._starts)

    def approximate_num_entries(self) -> int:
        """RocksDB's estimate; counts expired entries until they are deleted from disk."""
        return self._estimate_num_keys()

    def restore_batch(self, records: list[tuple[bytes, int, bytes | None]]) -> None:
        """Apply window changelog records in one write batch.

        Expects (serialized key, window start, serialized value or None for a
        tombstone): the changelog key split by `split_window_changelog_key`,
        with no deserializing and reserializing. Puts into expired windows are
        ignored, as `put` ignores them.
        """
        batch = WriteBatch(raw_mode=True)
        put, delete = batch.put, batch.delete
        start_set, horizon = self._start_set, self._horizon
        observed, retention = self._observed_time, self.retention_ms
        new_starts = []
        for key_bytes, window_start, value in records:
            if window_start not in start_set:
                # Time advances within the batch as it would over the same puts.
                if window_start > observed:
                    observed = window_start
                    horizon = observed - retention
                if window_start <= horizon or value is None:
                    continue
                start_set.add(window_start)
                new_starts.append(window_start)
            if value is None:
                delete(_start_bytes(window_start) + key_bytes)
            else:
                put(_start_bytes(window_start) + key_bytes, value)
        self._db.write(batch, self._write_options)
        if new_starts:
            self._starts.extend(new_starts)
            self._starts.sort()
        # Expire what the batch's time passed, as the same puts would have.
        self.observe_stream_time(observed)
