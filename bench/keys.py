"""Cost growth of the Aggregator with the number of distinct keys: throughput and memory.

    .venv/bin/python bench/keys.py                                   # 10k, 100k, 1M keys
    .venv/bin/python bench/keys.py --records 200000 --keys 10000,100000

Issue 5's cost curves (restore time against changelog size is bench/restore.py).
On the broker and database of `topicflow dev up`, for each number of distinct
keys K:

- the input: N words (`--records`, 2M) drawn from K distinct words `w0000000`,
  `w0000001`, ... of equal length: every word once, the other N - K drawn
  uniformly, then shuffled. Uniform, not Zipf: every word is as likely in
  every window, the worst case for the store (the most (window, word) rows for
  N and K). Timestamps are spread evenly over bench/compare.py's SPAN_MS (2
  minutes: 12 windows of 10 s, within the 5 min grace, so no record is late
  and no window expires during the run). Produced round-robin into a fresh
  `words` topic of 4 partitions under the run's own KAFKA_PREFIX;
- the Aggregator runs as the service does (`python -m services.aggregator`,
  through bench/compare.py's `start_system`: at-least-once without idempotent
  state, 1 s commits, the default record cache), writing into a fresh
  PostgreSQL database;
- the clock runs from RUNNING until its group has committed every input and
  repartition record; CPU seconds (startup excluded) and peak RSS (VmHWM) of
  the process are read from /proc, as is its RSS at RUNNING;
- `windowed_counts` must equal the count of every (window start, word) of the
  input.

The store: each K runs with the Aggregator's in-memory window store and with
RocksDB (`--stores`: the service's AGGREGATOR_STATE_STORE). To tell where
memory goes, `store_model_mb` is what the Python objects of an
`InMemoryWindowStore` holding the final table take (tracemalloc, in this
process); `changelog_records` counts what the record cache let through to the
changelog.

Writes bench/results/keys.json, keys.md and, with .dev/bench-venv's matplotlib,
keys.png. A run's topics, database and state directory are deleted after its
check (`--keep` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from compare import (  # noqa: E402
    BENCH_VENV,
    PARTITIONS,
    SPAN_MS,
    WINDOW_MS,
    check,
    database,
    exited,
    group_done,
    proc_cpu,
    proc_peak_rss_mb,
    produce,
    start_system,
    stop,
    wait_for,
    word_window_truth,
)
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from services.aggregator import DEFAULT_GRACE, WINDOW  # noqa: E402
from topicflow.state.stores import InMemoryWindowStore  # noqa: E402

KEYS = (10_000, 100_000, 1_000_000)
APPLICATION = "aggregator-app"
RESULTS = ROOT / "bench" / "results"


# -- input and ground truth ----------------------------------------------------------


def word_names(keys: int) -> list[str]:
    # One width for every K, so that a word costs the same bytes whatever K is.
    return [f"w{i:07d}" for i in range(keys)]


def timed_words(keys: int, count: int, start_ms: int, seed: int) -> list[tuple[int, str]]:
    """`count` (timestamp, word) over `keys` distinct words, each of which occurs."""
    if count < keys:
        raise SystemExit(f"--records {count} cannot hold {keys} distinct words")
    rng = random.Random(seed)
    names = word_names(keys)
    picks = list(range(keys)) + [rng.randrange(keys) for _ in range(count - keys)]
    rng.shuffle(picks)
    step = SPAN_MS / count
    return [(start_ms + int(i * step), names[k]) for i, k in enumerate(picks)]


def store_model_mb(truth: dict[tuple[int, str], int]) -> float:
    """MB of Python objects an in-memory window store holding the final table takes."""
    retention_ms = int((WINDOW + DEFAULT_GRACE).total_seconds() * 1000)
    tracemalloc.start()
    store = InMemoryWindowStore("model", retention_ms)
    for (window_start, word), count in truth.items():
        # A fresh str per (window, word), as the service's String deserializer
        # makes one per record and each window's dict keeps its first.
        store.put(word.encode().decode(), count, window_start)
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(size / 2**20, 1)


# -- one run -------------------------------------------------------------------------


def run(
    keys: int,
    records: list[tuple[int, str]],
    truth: dict[tuple[int, str], int],
    bootstrap: str,
    pg_admin: str,
    keep: bool,
    store: str,
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:6]
    os.environ["AGGREGATOR_STATE_STORE"] = store  # start_system passes the environment on
    prefix = f"keys-{keys}-{tag}."
    workdir = Path(tempfile.mkdtemp(prefix=f"topicflow-keys-{keys}-"))
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(prefix + "words", PARTITIONS, 1)]).values():
        future.result(30)
    produce(bootstrap, prefix + "words", records)
    db = database(pg_admin, f"keys_{keys}_{tag}")
    process, marker = start_system("topicflow", "aggregator", prefix, bootstrap, db, workdir)
    log_path = workdir / "topicflow-aggregator.log"
    group = prefix + APPLICATION
    # A member of the group that never subscribes: it reads the committed offsets.
    probe = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        wait_for(log_path, marker, process, 120)
        # VmHWM at RUNNING: the process before any word (interpreter, clients, buffers).
        startup_rss = proc_peak_rss_mb(process.pid)
        cpu0, started = proc_cpu(process.pid), time.monotonic()
        # RSS over the run, in the JSON: does memory follow the state or jump early?
        timeline: list[tuple[float, float]] = []
        while not group_done(probe, admin, group, [prefix + "words"]):
            if process.poll() is not None:
                raise exited(log_path)
            timeline.append((round(time.monotonic() - started, 1), proc_rss_mb(process.pid)))
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu, rss = proc_cpu(process.pid) - cpu0, proc_peak_rss_mb(process.pid)
        final_rss = proc_rss_mb(process.pid)
        load = os.getloadavg()[0]
        internal = _internal_records(probe, admin, group)
        time.sleep(1.5)  # as bench/compare.py: the sink's last flush after the last commit
    finally:
        stop(process)
        probe.close()
    result: dict[str, Any] = {
        "keys": keys,
        "store": store,
        "input_records": len(records),
        "seconds": round(elapsed, 2),
        "input_per_s": round(len(records) / elapsed),
        "cpu_s_per_million": round(cpu / len(records) * 1e6, 2),
        "peak_rss_mb": round(rss, 1),
        "startup_rss_mb": round(startup_rss, 1),
        "final_rss_mb": final_rss,
        **internal,
        # The machine is shared: a 1 min load well above 1.5 (this run and the
        # broker) means another benchmark ran alongside.
        "load_1min": round(load, 2),
        "rss_timeline_mb": _thin(timeline, 40),
    }
    result.update(check("aggregator", truth, bootstrap, prefix, db))
    if not keep:
        _clean_up(admin, prefix, pg_admin, db)
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def proc_rss_mb(pid: int) -> float:
    """Resident memory of a process now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _thin(samples: list[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` of `samples`, evenly spaced, the last one kept."""
    step = max(1, -(-len(samples) // most))
    return samples[::-1][::step][::-1]


def _internal_records(probe: Consumer, admin: AdminClient, group: str) -> dict[str, int]:
    """Records in the run's repartition and changelog topics."""
    counts = {"repartition_records": 0, "changelog_records": 0}
    for name, topic in admin.list_topics(timeout=10).topics.items():
        if not name.startswith(group):
            continue
        kind = name.rsplit("-", 1)[-1]
        if f"{kind}_records" in counts:
            for p in topic.partitions:
                counts[f"{kind}_records"] += probe.get_watermark_offsets(
                    TopicPartition(name, p), timeout=10
                )[1]
    return counts


def _clean_up(admin: AdminClient, prefix: str, pg_admin: str, db: str) -> None:
    """Delete the run's topics and database: 1M keys leave ~2M-record topics behind."""
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    for future in admin.delete_topics(topics).values():
        future.result(30)
    with psycopg.connect(pg_admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}" WITH (FORCE)')


# -- report --------------------------------------------------------------------------


def markdown(results: list[dict[str, Any]]) -> str:
    first = results[0]
    lines = [
        f"Aggregator on Kafka + PostgreSQL, {first['input_records']:,} words drawn uniformly "
        f"from K distinct words (each occurring), over {SPAN_MS // 1000} s of event time "
        f"({SPAN_MS // WINDOW_MS} windows of {WINDOW_MS // 1000} s), {PARTITIONS} partitions, "
        "one stream worker, 1 s commits.",
        "",
        "| keys | store | input records/s | CPU s per 1M | peak RSS MB | RSS at RUNNING MB "
        "| store model MB | rows | changelog records | correct |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        correct = "yes" if r["correct"] else "NO: " + r["detail"]
        lines.append(
            f"| {r['keys']:,} | {r['store']} | {r['input_per_s']:,} | {r['cpu_s_per_million']} "
            f"| {r['peak_rss_mb']} | {r['startup_rss_mb']} | {r['store_model_mb']} "
            f"| {r['records_out']:,} | {r['changelog_records']:,} | {correct} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", default=",".join(str(k) for k in KEYS))
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--stores", default="in-memory,rocksdb", help="values of AGGREGATOR_STATE_STORE to run"
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's topics and database")
    args = parser.parse_args()
    from topicflow_dev import up

    dev = up()
    results = []
    for keys in sorted(int(k) for k in args.keys.split(",") if k):
        records = timed_words(keys, args.records, int(time.time() * 1000) - SPAN_MS, args.seed)
        truth = word_window_truth(records)
        # After a run, outside its clock: building the model takes CPU and memory here.
        model_mb = store_model_mb(truth)
        for store in args.stores.split(","):
            result = run(
                keys, records, truth, dev.bootstrap_servers, dev.database_url, args.keep, store
            )
            result["store_model_mb"] = model_mb
            results.append(result)
            print(json.dumps(result), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "keys.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "keys.md").write_text(markdown(results))
    print(markdown(results))
    if (BENCH_VENV / "bin" / "python").exists():
        subprocess.run(
            [str(BENCH_VENV / "bin" / "python"), str(ROOT / "bench" / "chart.py"),
             str(RESULTS / "keys.json"), str(RESULTS / "keys.png")],
            check=True,
        )  # fmt: skip
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
