"""Restore speed of a key-value store from its changelog, on the embedded broker and on Kafka.

    .venv/bin/python bench/restore.py                        # 100k and 1M, both brokers
    .venv/bin/python bench/restore.py --large                # and 5M
    .venv/bin/python bench/restore.py --broker embedded --sizes 1000000 --profile

The target: 1M changelog records restored in under 5 s.

The changelog (`bench-restore-{N}-counts-changelog`, one partition, compacted)
holds N records with distinct String keys and Long values. Kafka: produced once
and reused by later runs while it holds N records. Embedded: produced into the
broker inside the child process before the clock starts.

Each measurement runs in a child process, with an empty state directory (no
checkpoint: a full restore), and reports:

- `restore_s`: `StateManager.restore(consumer)` as the stream worker calls it
  (its restore consumer settings), for an in-memory and for a persistent
  (RocksDB) store, built as `StreamTask` builds it;
- `tuned_s`: the same with the restore consumer setting proposed in
  `PROPOSED_RESTORE_CONFIG` (`fetch.queue.backoff.ms`, for Kafka only);
- `batched_s`: the restore loop proposed for the state manager, with that
  setting: one `restore_batch` per consumed batch on a RocksDB store (no
  deserializing and reserializing), one tight deserializing loop per batch for
  an in-memory store (instead of three calls per record), and consume() never
  asked for more records than remain, with a 0.05 s timeout instead of 0.5 s;
- `consume_s`: reading the N records from the broker alone (touching each
  message's error, key, value and offset), and `apply_s`: the store side alone,
  restore's batch applier (state/changelog_apply.py) over the N records read
  beforehand, in RESTORE_BATCH batches, so that restore_s ~ consume_s +
  apply_s tells where the time goes;
- CPU seconds of `restore_s` and the child's peak RSS.

Each figure is the median of `--repeat` runs (3; the runs are in the JSON),
interleaved, since the machine may be shared.

`--profile` prints cProfile's top functions of the 1M `StateManager.restore`.
Not a test: it asserts only that every record was restored.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import TopicPartition  # noqa: E402

from topicflow import Serdes, StreamsConfig  # noqa: E402
from topicflow.brokers.base import OFFSET_BEGINNING, TopicSpec  # noqa: E402
from topicflow.runtime.worker_clients import RESTORE_CONSUMER_CONFIG  # noqa: E402
from topicflow.state.changelog_apply import batch_applier  # noqa: E402
from topicflow.state.logged.cached_key_value import CachedKeyValueStore  # noqa: E402
from topicflow.state.manager import StateManager  # noqa: E402
from topicflow.state.restore import RESTORE_BATCH  # noqa: E402
from topicflow.state.stores import StoreSpec  # noqa: E402
from topicflow.topology.nodes import RecordContext  # noqa: E402

STORE = "counts"
TARGET_S = 5.0
TARGET_RECORDS = 1_000_000
_LONG = struct.Struct(">q")


def application_id(count: int) -> str:
    return f"bench-restore-{count}"


def changelog_topic(count: int) -> str:
    return f"{application_id(count)}-{STORE}-changelog"


def records(count: int) -> Iterator[tuple[bytes, bytes]]:
    pack = _LONG.pack
    for i in range(count):
        yield b"key-%09d" % i, pack(i)


# -- the changelog ---------------------------------------------------------------------------


def _kafka_bootstrap() -> str:
    from topicflow_dev import up

    return up().bootstrap_servers


def prepare_kafka(bootstrap: str, count: int) -> None:
    """Produce `count` records to the changelog unless it already holds exactly that many."""
    from confluent_kafka import Consumer, Producer

    from topicflow.brokers.kafka import KafkaBroker

    admin = KafkaBroker({"bootstrap.servers": bootstrap}).admin()
    topic = changelog_topic(count)
    if admin.partition_counts([topic], 10):
        probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-restore-probe"})
        try:
            low, high = probe.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            probe.close()
        if (low, high) == (0, count):
            return
        admin.delete_topics([topic], 30)
        deadline = time.monotonic() + 30
        while admin.partition_counts([topic], 10) and time.monotonic() < deadline:
            time.sleep(0.2)
    admin.create_topics([TopicSpec(topic, 1, config={"cleanup.policy": "compact"})], 30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    for key, value in records(count):
        while True:
            try:
                producer.produce(topic, value, key, partition=0)
                break
            except BufferError:
                producer.poll(0.1)
    if producer.flush(120):
        raise SystemExit(f"bench: producing to {topic} did not finish")


def embedded_broker(count: int) -> Any:
    from topicflow.brokers.embedded import EmbeddedBroker

    broker = EmbeddedBroker(default_partitions=1)
    topic = changelog_topic(count)
    broker.create_topics([TopicSpec(topic, 1, config={"cleanup.policy": "compact"})])
    producer = broker.producer({})
    for key, value in records(count):
        producer.produce(topic, value, key, partition=0)
    producer.flush(30)
    return broker


# -- one measurement (child process) ---------------------------------------------------------


class _Sender:
    """Restore sends nothing; the state manager only needs the shape."""

    def send(self, *args: Any) -> None:
        raise AssertionError("restore must not write to the changelog")

    def partition_count(self, topic: str) -> int:
        return 1


# The stream worker's restore consumer settings.
WORKER_RESTORE_CONFIG: dict[str, Any] = dict(RESTORE_CONSUMER_CONFIG)
# Settings under trial, on top (none pending: the last trial, fetch.queue.backoff.ms
# and fetch.wait.max.ms, is in the worker's settings now).
PROPOSED_RESTORE_CONFIG: dict[str, Any] = {**WORKER_RESTORE_CONFIG}


def _restore_consumer(broker: Any, config: StreamsConfig, tuned: bool = False) -> Any:
    client = config.base_client_config()
    client.update({"group.id": "bench-restore", "enable.auto.commit": False})
    client.update(PROPOSED_RESTORE_CONFIG if tuned else WORKER_RESTORE_CONFIG)
    return broker.consumer(client)


def _manager(count: int, persistent: bool, state_dir: str, bootstrap: str | None) -> StateManager:
    config = _config(count, state_dir, bootstrap)
    spec = StoreSpec(STORE, "key_value", Serdes.String(), Serdes.Long(), persistent=persistent)
    return StateManager("0_0", 0, [spec], config, _Sender(), RecordContext())


def _config(count: int, state_dir: str, bootstrap: str | None) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id(count), bootstrap_servers=bootstrap, state_dir=state_dir
    )


def _check(manager: StateManager, count: int) -> None:
    store = manager.stores[STORE]
    assert isinstance(store, CachedKeyValueStore)
    for i in (0, count // 2, count - 1):
        got = store.get(f"key-{i:09d}")
        assert got == i, f"key-{i:09d}: {got!r} after restore"


def batched_restore(manager: StateManager, consumer: Any, topic: str) -> int:
    """The restore loop proposed for `StateManager.restore`, for one key-value store.

    Per consumed batch: one list of (key, value) bytes and one `restore_batch`
    call on a store that has it (RocksDB); otherwise one loop that deserializes
    and writes the in-memory dict directly.
    """
    store = manager.stores[STORE]
    inner = store.inner
    tp = TopicPartition(topic, 0)
    low, high = consumer.get_watermark_offsets(tp, timeout=30)
    if high <= low:
        return 0
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING if low == 0 else low)])
    restore_batch: Callable[[list[tuple[bytes | None, bytes | None]]], None]
    if hasattr(inner, "restore_batch"):
        restore_batch = inner.restore_batch
    else:
        restore_batch = _in_memory_restore_batch(inner)
    applied = 0
    position = low
    try:
        while True:
            # confluent's consume() returns only once it has num_messages or its
            # timeout has passed: the last batch, short of RESTORE_BATCH, used to
            # wait out 0.5 s. Never ask for more offsets than are left (exact when
            # compaction left no gaps), and wait briefly: a full batch takes a few
            # ms when the records are there, and the caller loops anyway.
            messages = consumer.consume(min(RESTORE_BATCH, high - position), 0.05)
            if not messages:
                continue
            restore_batch([(m.key(), m.value()) for m in messages if m.error() is None])
            applied += len(messages)
            position = messages[-1].offset() + 1
            if position >= high:
                return applied
    finally:
        consumer.unassign()


def _in_memory_restore_batch(
    inner: Any,
) -> Callable[[list[tuple[bytes | None, bytes | None]]], None]:
    """What an `InMemoryKeyValueStore.restore_batch(pairs, key_serde, value_serde)` would do."""
    data: dict[Any, Any] = inner._data
    deserialize_key = Serdes.String().deserialize
    deserialize_value = Serdes.Long().deserialize
    pop = data.pop

    def restore_batch(pairs: list[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in pairs:
            if value is None:
                pop(deserialize_key(key), None)
            else:
                data[deserialize_key(key)] = deserialize_value(value)

    return restore_batch


def _consume_only(broker: Any, config: StreamsConfig, topic: str, count: int) -> float:
    consumer = _restore_consumer(broker, config)
    started = time.perf_counter()
    # As restore does first; it also gets the connection up before consuming.
    consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen = 0
    while seen < count:
        for message in consumer.consume(RESTORE_BATCH, 0.5):
            message.error()
            message.key()
            message.value()
            message.offset()
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


class _Record:
    """A changelog record as the consumer hands it to the applier, read before the clock."""

    __slots__ = ("_key", "_value")

    def __init__(self, key: bytes, value: bytes) -> None:
        self._key, self._value = key, value

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)

    def headers(self) -> None:
        return None


def _apply_only(count: int, persistent: bool, state_dir: str) -> float:
    """Restore's batch applier over records read beforehand: the store side alone."""
    manager = _manager(count, persistent, state_dir, None)
    apply = batch_applier(manager.stores[STORE], manager._config)
    messages = [_Record(key, value) for key, value in records(count)]
    started = time.perf_counter()
    for start in range(0, count, RESTORE_BATCH):
        apply(messages[start : start + RESTORE_BATCH])
    elapsed = time.perf_counter() - started
    _check(manager, count)
    manager.close()
    return elapsed


def _timed_restore(
    broker: Any,
    count: int,
    persistent: bool,
    state_dir: Path,
    bootstrap: str | None,
    *,
    tuned: bool = False,
    batched: bool = False,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, float]:
    """(wall, CPU) seconds of one full restore into a fresh store."""
    manager = _manager(count, persistent, str(state_dir), bootstrap)
    consumer = _restore_consumer(broker, _config(count, str(state_dir), bootstrap), tuned)
    cpu0 = time.process_time()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    if batched:
        applied = batched_restore(manager, consumer, changelog_topic(count))
    else:
        applied = manager.restore(consumer)
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    assert applied == count, f"restored {applied} of {count}"
    _check(manager, count)
    manager.close()
    consumer.close()
    return elapsed, cpu


def child(
    broker_kind: str, count: int, persistent: bool, profile: bool, repeat: int
) -> dict[str, Any]:
    bootstrap = _kafka_bootstrap() if broker_kind == "kafka" else None
    if broker_kind == "kafka":
        from topicflow.brokers.kafka import KafkaBroker

        broker: Any = KafkaBroker({"bootstrap.servers": bootstrap})
    else:
        broker = embedded_broker(count)
    base = Path(tempfile.mkdtemp(prefix="bench-restore-"))
    result: dict[str, Any] = {
        "broker": broker_kind,
        "records": count,
        "store": "rocksdb" if persistent else "in-memory",
        "repeat": repeat,
    }
    runs: dict[str, list[float]] = {
        name: [] for name in ("restore", "tuned", "batched", "consume", "apply", "cpu")
    }
    topic = changelog_topic(count)
    try:
        # Interleaved, so that a noisy neighbour spreads over all the figures.
        for i in range(repeat):
            # 1. StateManager.restore as it is, with the stream worker's consumer settings.
            run = base / str(i)
            elapsed, cpu = _timed_restore(broker, count, persistent, run / "1", bootstrap)
            runs["restore"].append(elapsed)
            runs["cpu"].append(cpu)
            # 2. The same, with the proposed consumer setting alone.
            elapsed, _cpu = _timed_restore(
                broker, count, persistent, run / "2", bootstrap, tuned=True
            )
            runs["tuned"].append(elapsed)
            # 3. The proposed restore loop, with the proposed consumer setting.
            elapsed, _cpu = _timed_restore(
                broker, count, persistent, run / "3", bootstrap, tuned=True, batched=True
            )
            runs["batched"].append(elapsed)
            # 4. Where the time of 1 goes: reading alone, applying alone.
            config = _config(count, str(run), bootstrap)
            runs["consume"].append(_consume_only(broker, config, topic, count))
            runs["apply"].append(_apply_only(count, persistent, str(run / "4")))
            shutil.rmtree(run, ignore_errors=True)
        for name, values in runs.items():
            result[f"{name}_s"] = round(statistics.median(values), 3)
        result["records_per_s"] = round(count / result["restore_s"])
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        result["runs"] = {name: [round(v, 3) for v in values] for name, values in runs.items()}
        if profile:
            profiler = cProfile.Profile()
            _timed_restore(broker, count, persistent, base / "p", bootstrap, profiler=profiler)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
            result["profile"] = out.getvalue()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return result


# -- driver ----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated record counts")
    parser.add_argument("--large", action="store_true", help="also 5M records")
    parser.add_argument("--broker", choices=["kafka", "embedded", "both"], default="both")
    parser.add_argument("--store", choices=["in-memory", "rocksdb", "both"], default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile the 1M restores")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--persistent", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    if args.child:
        result = child(args.broker, sizes[0], args.persistent, args.profile, args.repeat)
        print(json.dumps(result))
        return 0

    if args.large and 5_000_000 not in sizes:
        sizes.append(5_000_000)
    brokers = ["embedded", "kafka"] if args.broker == "both" else [args.broker]
    stores = ["in-memory", "rocksdb"] if args.store == "both" else [args.store]
    results = []
    for kind in brokers:
        for count in sizes:
            if kind == "kafka":
                prepare_kafka(_kafka_bootstrap(), count)
            for store in stores:
                command = [sys.executable, __file__, "--child", "--broker", kind]
                command += ["--sizes", str(count), "--repeat", str(args.repeat)]
                if store == "rocksdb":
                    command.append("--persistent")
                if args.profile and count == TARGET_RECORDS:
                    command.append("--profile")
                out = subprocess.run(
                    command,
                    check=True,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "LOG_LEVEL": "WARNING"},
                )
                result = json.loads(out.stdout.strip().splitlines()[-1])
                profile = result.pop("profile", None)
                if profile:
                    print(f"\n== profile: {kind}, {count:,} records, {store} ==\n{profile}")
                results.append(result)
                _print_row(result, header=len(results) == 1)

    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "restore.json").write_text(json.dumps(results, indent=2) + "\n")
    missed = [r for r in results if r["records"] == TARGET_RECORDS and r["restore_s"] >= TARGET_S]
    for r in missed:
        print(f"target missed: {r['broker']}, {r['store']}: {r['restore_s']:.2f} s >= {TARGET_S} s")
    return 0


def _print_row(r: dict[str, Any], header: bool) -> None:
    if header:
        print(
            f"{'broker':<9}{'records':>10}  {'store':<10}{'restore s':>10}{'rec/s':>11}"
            f"{'tuned s':>9}{'batched s':>10}{'consume s':>10}{'apply s':>9}{'CPU s':>7}"
            f"{'RSS MB':>8}"
        )
    print(
        f"{r['broker']:<9}{r['records']:>10,}  {r['store']:<10}{r['restore_s']:>10.2f}"
        f"{r['records_per_s']:>11,}{r['tuned_s']:>9.2f}{r['batched_s']:>10.2f}{r['consume_s']:>10.2f}"
        f"{r['apply_s']:>9.2f}{r['cpu_s']:>7.2f}{r['peak_rss_mb']:>8.1f}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
