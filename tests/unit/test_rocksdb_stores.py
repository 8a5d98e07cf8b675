"""The RocksDB stores behave as the in-memory ones, persist across reopening, restore in bulk."""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from rocksdict import Options, Rdict

from topicflow import Serdes
from topicflow.errors import StreamsException
from topicflow.state.rocksdb import RocksDBKeyValueStore, RocksDBWindowStore
from topicflow.state.stores import (
    InMemoryKeyValueStore,
    InMemoryWindowStore,
    TimestampedSerde,
)

LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
ROOT = Path(__file__).resolve().parents[2]


def kv_store(path: Path, name: str = "counts") -> RocksDBKeyValueStore:
    return RocksDBKeyValueStore(name, path, Serdes.String(), Serdes.Long())


def window_store(path: Path, retention_ms: int, name: str = "windows") -> RocksDBWindowStore:
    return RocksDBWindowStore(name, path, retention_ms, Serdes.String(), Serdes.Long())


def raw_entries(path: Path) -> list[tuple[bytes, bytes]]:
    """What is on disk, read with a bare RocksDB handle (the store must be closed)."""
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        return cast("list[tuple[bytes, bytes]]", list(db.items()))
    finally:
        db.close()


def by_bytes(items: list[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(items, key=lambda kv: kv[0].encode())


def window_sorted(items: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    return sorted(items, key=lambda e: (e[1], e[0].encode()))


# -- key-value store ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_key_value_store_matches_in_memory_store(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    memory = InMemoryKeyValueStore("counts")
    rocks = kv_store(tmp_path / "counts")
    keys = [f"k{i}" for i in range(12)] + ["", "é", "k1x"]
    try:
        for step in range(600):
            key = rng.choice(keys)
            op = rng.random()
            if op < 0.45:
                value = None if rng.random() < 0.2 else rng.randint(LONG_MIN, LONG_MAX)
                memory.put(key, value)
                rocks.put(key, value)
            elif op < 0.6:
                value = rng.randint(-5, 5)
                assert rocks.put_if_absent(key, value) == memory.put_if_absent(key, value)
            elif op < 0.75:
                assert rocks.delete(key) == memory.delete(key)
            elif op < 0.98:
                assert rocks.get(key) == memory.get(key)
            else:
                rocks.close()
                rocks = kv_store(tmp_path / "counts")
            everything = list(rocks.all())
            assert everything == by_bytes(list(memory.all())), f"step {step}"
        assert all(rocks.get(k) == memory.get(k) for k in keys)
    finally:
        rocks.close()


def test_key_value_put_none_deletes(tmp_path: Path) -> None:
    store = kv_store(tmp_path / "s")
    store.put("a", 1)
    store.put("a", None)
    assert store.get("a") is None
    assert list(store.all()) == []
    store.put("b", 2)
    assert store.delete("b") == 2
    assert store.delete("b") is None
    store.close()


def test_key_value_all_is_a_snapshot_in_key_byte_order(tmp_path: Path) -> None:
    store = kv_store(tmp_path / "s")
    for key in ["b", "a", "ab", "B"]:
        store.put(key, len(key))
    iterator = store.all()
    store.put("c", 9)
    store.delete("a")
    assert list(iterator) == [("B", 1), ("a", 1), ("ab", 2), ("b", 1)]
    store.close()


def test_key_value_store_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "counts"  # created on open
    store = kv_store(path)
    assert store.persistent
    for i in range(1000):
        store.put(f"key-{i}", i)
    store.put("key-7", None)
    unfinished = store.all()
    next(unfinished)  # an open iterator must not keep the database locked
    store.close()
    store.close()  # idempotent

    store = kv_store(path)
    assert store.get("key-999") == 999
    assert store.get("key-7") is None
    assert len(list(store.all())) == 999
    assert 900 <= store.approximate_num_entries() <= 1100
    store.close()
    # and again, after a reopen without writes
    store = kv_store(path)
    assert store.get("key-0") == 0
    store.close()


def test_key_value_store_uses_the_serdes(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = kv_store(path)
    store.put("answer", 42)
    store.put("neg", -1)
    store.close()
    assert raw_entries(path) == [
        (b"answer", struct.pack(">q", 42)),
        (b"neg", b"\xff" * 8),
    ]
    json_store = RocksDBKeyValueStore("j", tmp_path / "j", Serdes.Long(), Serdes.Json())
    json_store.put(5, {"a": [1, 2]})
    assert json_store.get(5) == {"a": [1, 2]}
    json_store.close()
    assert raw_entries(tmp_path / "j") == [(struct.pack(">q", 5), b'{"a":[1,2]}')]


def test_key_value_store_rejects_null_keys(tmp_path: Path) -> None:
    store = kv_store(tmp_path / "s")
    with pytest.raises(StreamsException, match="null"):
        store.put(None, 1)
    assert store.get(None) is None
    assert store.delete(None) is None
    store.close()


def test_key_value_restore_batch_equals_puts(tmp_path: Path) -> None:
    rng = random.Random(7)
    key_serde, value_serde = Serdes.String(), Serdes.Long()
    records: list[tuple[bytes | None, bytes | None]] = []
    for _ in range(5000):
        key = f"user-{rng.randint(0, 300)}"
        value = None if rng.random() < 0.15 else rng.randint(0, 1 << 40)
        records.append((key_serde.serialize(key), value_serde.serialize(value)))
    records.append((None, b"ignored"))

    batched = kv_store(tmp_path / "batched")
    for i in range(0, len(records), 1000):
        batched.restore_batch(records[i : i + 1000])
    one_by_one = kv_store(tmp_path / "puts")
    memory = InMemoryKeyValueStore("m")
    for key_bytes, value_bytes in records:
        if key_bytes is None:
            continue
        restored = key_serde.deserialize(key_bytes), value_serde.deserialize(value_bytes)
        one_by_one.put(*restored)
        memory.put(*restored)
    expected = by_bytes(list(memory.all()))
    assert list(batched.all()) == expected
    assert list(one_by_one.all()) == expected
    batched.close()
    one_by_one.close()
    # and what was restored in bulk is on disk after a reopen
    reopened = kv_store(tmp_path / "batched")
    assert list(reopened.all()) == expected
    reopened.close()


# -- window store ------------------------------------------------------------------------


def check_same_windows(
    rocks: RocksDBWindowStore,
    memory: InMemoryWindowStore,
    keys: list[str],
    rng: random.Random,
    *,
    check_count: bool,
) -> None:
    everything = list(rocks.all())
    assert everything == window_sorted(everything)
    assert everything == window_sorted(list(memory.all()))
    if check_count:
        assert rocks.window_count() == memory.window_count()
    low, high = sorted(rng.randint(-50_000, 800_000) for _ in range(2))
    ranged = list(rocks.fetch_all(low, high))
    assert ranged == window_sorted(list(memory.fetch_all(low, high)))
    key = rng.choice(keys)
    assert list(rocks.fetch_range(key, low, high)) == list(memory.fetch_range(key, low, high))
    assert list(rocks.fetch_range(key, LONG_MIN, LONG_MAX)) == list(
        memory.fetch_range(key, LONG_MIN, LONG_MAX)
    )


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("reopen", [False, True])
def test_window_store_matches_in_memory_store(tmp_path: Path, seed: int, reopen: bool) -> None:
    rng = random.Random(seed)
    retention = 200_000  # disk purges every 100 s of stream time
    size = 10_000
    memory = InMemoryWindowStore("w", retention)
    rocks = window_store(tmp_path / "w", retention)
    keys = [f"k{i}" for i in range(6)] + ["", "k1k"]
    stream_time = observed = 0
    reopened = False
    try:
        for step in range(500):
            op = rng.random()
            if op < 0.2:
                # mostly forward, sometimes backwards (a no-op), sometimes a big jump
                stream_time = max(0, stream_time + rng.choice([-5_000, 3_000, 20_000, 150_000]))
                memory.observe_stream_time(stream_time)
                rocks.observe_stream_time(stream_time)
                observed = max(observed, stream_time)
            elif op < 0.65:
                start = max(0, stream_time + rng.randint(-retention - 30_000, 20_000))
                start -= start % size
                key = rng.choice(keys)
                value = None if rng.random() < 0.2 else rng.randint(-1000, 1000)
                memory.put(key, value, start)
                rocks.put(key, value, start)
                observed = max(observed, start)  # writing advances a window store's time
            elif op < 0.95:
                start = max(0, stream_time + rng.randint(-retention - 30_000, 20_000))
                start -= start % size
                key = rng.choice(keys)
                assert rocks.fetch(key, start) == memory.fetch(key, start), f"step {step}"
            elif reopen:
                rocks.close()
                rocks = window_store(tmp_path / "w", retention)
                # A restarted task observes stream time again with its first record.
                rocks.observe_stream_time(observed)
                reopened = True
            # (empty windows, kept by both stores, are not found again on reopening)
            check_same_windows(rocks, memory, keys, rng, check_count=not reopened)
    finally:
        rocks.close()


def test_window_put_none_deletes_and_does_not_create_a_window(tmp_path: Path) -> None:
    store = window_store(tmp_path / "w", 100_000)
    store.put("a", 1, 0)
    store.put("a", None, 0)
    assert store.fetch("a", 0) is None
    store.put("b", None, 10)
    assert store.window_count() == 1  # window 0, now empty, as in memory
    assert list(store.all()) == []
    store.close()


def test_window_puts_into_expired_windows_are_ignored(tmp_path: Path) -> None:
    store = window_store(tmp_path / "w", retention_ms=1_000)
    store.put("a", 1, 0)
    store.put("a", 2, 5_000)
    store.observe_stream_time(5_000)  # horizon 4_000: window 0 expired
    assert store.fetch("a", 0) is None
    store.put("a", 3, 0)
    store.put("b", 3, 4_000)  # start == horizon: expired too
    assert store.fetch("a", 0) is None
    assert store.fetch("b", 4_000) is None
    store.restore_batch([(b"c", 4_000, struct.pack(">q", 1))])
    assert store.fetch("c", 4_000) is None
    store.put("b", 4, 4_001)
    assert list(store.all()) == [("b", 4_001, 4), ("a", 5_000, 2)]
    assert store.window_count() == 2
    store.observe_stream_time(4_000)  # stream time never goes back
    store.put("a", 5, 3_999)
    assert store.fetch("a", 3_999) is None
    store.close()


def test_window_expiry_deletes_from_disk_once_per_purge_interval(tmp_path: Path) -> None:
    path = tmp_path / "w"
    retention = 600_000  # purge interval: 300 s of stream time

    def on_disk() -> list[int]:
        return sorted(struct.unpack(">Q", k[:8])[0] - (1 << 63) for k, _v in raw_entries(path))

    store = window_store(path, retention)
    # Writing advances the store's time, to 900_000 at the last put. The first
    # expiry (at 600_000, horizon 0) deletes from disk at once; the next purge
    # waits until the horizon has moved by the interval (horizon 300_000).
    for start in range(0, 1_000_000, 100_000):
        store.put("k", start, start)
    assert [s for _k, s, _v in store.all()] == list(range(400_000, 1_000_000, 100_000))
    store.observe_stream_time(1_100_000)  # horizon 500_000: expired, but not purged yet
    assert [s for _k, s, _v in store.all()] == list(range(600_000, 1_000_000, 100_000))
    store.close()
    assert on_disk() == list(range(400_000, 1_000_000, 100_000))

    store = window_store(path, retention)
    # Reopened: stream time is unknown until observed, as for a restored in-memory store.
    assert store.window_count() == 6
    store.observe_stream_time(1_100_000)
    assert store.window_count() == 4
    assert store.fetch("k", 500_000) is None
    assert store.fetch("k", 600_000) == 600_000
    store.close()
    assert on_disk() == list(range(600_000, 1_000_000, 100_000))


def test_window_store_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "w"
    store = window_store(path, 10_000_000)
    assert store.persistent
    for start in (0, 60_000, 120_000):
        for key in ("x", "y"):
            store.put(key, start + len(key), start)
    pending = store.fetch_all(0, 200_000)
    next(pending)
    store.close()
    store.close()
    store = window_store(path, 10_000_000)
    assert store.window_count() == 3
    assert list(store.fetch_range("y", 0, 100_000)) == [(0, 1), (60_000, 60_001)]
    assert list(store.fetch_all(60_000, 60_000)) == [("x", 60_000, 60_001), ("y", 60_000, 60_001)]
    assert store.approximate_num_entries() == 6
    store.close()


def test_window_store_layout_and_serdes(tmp_path: Path) -> None:
    path = tmp_path / "w"
    store = window_store(path, 1_000_000)
    store.put("b", 7, 256)
    store.put("a", -2, 1)
    store.close()
    assert raw_entries(path) == [
        (b"\x80" + b"\x00" * 6 + b"\x01" + b"a", struct.pack(">q", -2)),
        (b"\x80" + b"\x00" * 5 + b"\x01\x00" + b"b", struct.pack(">q", 7)),
    ]


def test_timestamped_values_on_disk_are_timestamp_then_value(tmp_path: Path) -> None:
    """A timestamped store keeps Kafka's ValueAndTimestampSerializer layout on disk:
    the timestamp (8 bytes, big-endian, signed), then the value's own bytes."""
    timestamped = TimestampedSerde(Serdes.Long())
    assert timestamped.serialize((5, 9_000)) == bytes.fromhex("00000000000023280000000000000005")
    assert timestamped.serialize((-2, -1)) == b"\xff" * 8 + struct.pack(">q", -2)
    assert timestamped.deserialize(bytes.fromhex("00000000000023280000000000000005")) == (
        5,
        9_000,
    )
    path = tmp_path / "w"
    store = RocksDBWindowStore("w", path, 1_000_000, Serdes.String(), timestamped)
    store.put("a", (3, 1_500), 1)
    assert store.fetch("a", 1) == (3, 1_500)
    store.close()
    assert raw_entries(path) == [
        (b"\x80" + b"\x00" * 6 + b"\x01" + b"a", struct.pack(">qq", 1_500, 3)),
    ]


def test_window_ranges_at_the_limits(tmp_path: Path) -> None:
    # A retention of LONG_MAX keeps window 1 after the write at LONG_MAX moves
    # the store's time there (horizon 0).
    store = window_store(tmp_path / "w", LONG_MAX)
    store.put("k", 1, 1)
    store.put("k", 2, LONG_MAX)
    assert list(store.fetch_all(LONG_MIN, LONG_MAX)) == [("k", 1, 1), ("k", LONG_MAX, 2)]
    assert list(store.fetch_all(2, LONG_MAX - 1)) == []
    assert list(store.fetch_all(5, 4)) == []
    assert list(store.fetch_range("k", LONG_MAX, LONG_MAX)) == [(LONG_MAX, 2)]
    store.close()
    store = window_store(tmp_path / "w", LONG_MAX)
    assert store.window_count() == 2
    store.close()


@pytest.mark.parametrize("seed", range(3))
def test_window_restore_batch_equals_puts(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    key_serde, value_serde = Serdes.String(), Serdes.Long()
    retention = 50_000
    records: list[tuple[bytes, int, bytes | None]] = []
    for _ in range(3000):
        key = f"k{rng.randint(0, 40)}"
        start = rng.randrange(0, 200_000, 5_000)
        value = None if rng.random() < 0.15 else rng.randint(0, 99)
        records.append((key_serde.serialize(key) or b"", start, value_serde.serialize(value)))

    batched = window_store(tmp_path / "batched", retention)
    one_by_one = window_store(tmp_path / "puts", retention)
    memory = InMemoryWindowStore("m", retention)
    # Expiry in the middle of the restore: later records for expired windows are ignored.
    half = len(records) // 2
    for stores_apply in (records[:half], records[half:]):
        for i in range(0, len(stores_apply), 400):
            batched.restore_batch(stores_apply[i : i + 400])
        for key_bytes, start, value_bytes in stores_apply:
            restored = key_serde.deserialize(key_bytes), value_serde.deserialize(value_bytes)
            one_by_one.put(*restored, start)
            memory.put(*restored, start)
        for store in (batched, one_by_one, memory):
            store.observe_stream_time(120_000)
    expected = window_sorted(list(memory.all()))
    assert list(batched.all()) == expected
    assert list(one_by_one.all()) == expected
    assert batched.window_count() == memory.window_count()
    for key in ("k0", "k1", "k40"):
        assert list(batched.fetch_range(key, 0, 200_000)) == list(
            memory.fetch_range(key, 0, 200_000)
        )
    batched.close()
    one_by_one.close()


def test_window_store_rejects_null_keys(tmp_path: Path) -> None:
    store = window_store(tmp_path / "w", 1_000)
    with pytest.raises(StreamsException, match="null"):
        store.put(None, 1, 0)
    assert store.window_count() == 0
    assert store.fetch(None, 0) is None
    assert list(store.fetch_range(None, 0, 10)) == []
    store.close()


def test_stores_open_through_the_state_manager(tmp_path: Path) -> None:
    from topicflow.config import StreamsConfig
    from topicflow.state.manager import StateManager
    from topicflow.state.stores import StoreSpec
    from topicflow.topology.nodes import RecordContext

    class Sender:
        def send(self, *args: Any) -> None:
            pass

        def partition_count(self, topic: str) -> int:
            return 1

    specs = [
        StoreSpec("kv", "key_value", Serdes.String(), Serdes.Long(), persistent=True),
        StoreSpec(
            "win", "window", Serdes.String(), Serdes.Long(), persistent=True, retention_ms=1000
        ),
    ]
    config = StreamsConfig(
        application_id="app", bootstrap_servers="embedded", state_dir=str(tmp_path)
    )
    manager = StateManager("0_0", 0, specs, config, Sender(), RecordContext())
    kv, win = manager.stores["kv"], manager.stores["win"]
    assert isinstance(kv.inner, RocksDBKeyValueStore)
    assert isinstance(win.inner, RocksDBWindowStore)
    assert (tmp_path / "app" / "0_0" / "kv").is_dir()
    manager.close()


def test_writes_survive_a_crash_once_flushed(tmp_path: Path) -> None:
    """No WAL: what reached the memtable is lost in a crash unless flush() ran.

    This is why a checkpoint may be written only after the persistent stores are
    flushed (or closed): a checkpointed store is trusted and not restored in full.
    """
    script = (
        "import os, sys; from pathlib import Path; from topicflow import Serdes;"
        "from topicflow.state.rocksdb import RocksDBKeyValueStore;"
        "s = RocksDBKeyValueStore('s', Path(sys.argv[1]), Serdes.String(), Serdes.Long());"
        "s.put('before', 1); s.flush(); s.put('after', 2); os._exit(0)"
    )
    path = tmp_path / "s"
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, cwd=ROOT)
    store = kv_store(path)
    assert list(store.all()) == [("before", 1)]
    store.close()
