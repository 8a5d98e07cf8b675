"""Side by side: topicflow, Java Kafka Streams and Quix Streams on the blog's three topologies.

Issue 5's harness (the cost curves are bench/keys.py's). On the broker and
database of `topicflow dev up`, each system runs each topology as its own
process (topicflow's service module, bench/java's program, or bench/quix's in a
virtualenv of its own), on topics of the run's own prefix (4 partitions), in
two phases (`--phases`, both by default).

Throughput, over a pre-produced backlog:

- the same input (same records, timestamps and partitions: 4) is produced into
  topics of the run's own prefix;
- the clock runs from the moment it reports RUNNING until its group has
  committed every input and repartition record; CPU seconds (the whole
  process, from /proc, startup excluded) and peak RSS are read from /proc;
- before its speed counts, its outputs are checked against ground truth
  computed here from the input: the number of words, the `windowed_counts`
  table, the alerts.

Latency, paced (Text Processor and Aggregator):

- the system starts on empty topics; once it is RUNNING, input arrives at a
  steady rate (`--paced-rate`, 10,000 records/s, for `--paced-seconds`, 60),
  stamped with the wall clock;
- after a warm-up (5 s), a hundred records a second carry a probe word of
  their own; each probe's latency runs from its produce() to its row in
  PostgreSQL (Aggregator) or its word in the output topic (Text Processor):
  p50, p99 and max; CPU share is the system's CPU seconds per second meanwhile;
- a probe that never arrives (30 s after the input ends) makes the run
  incorrect, as does output that differs from the truth of all its input.

Settings everywhere: at-least-once (topicflow without idempotent state), 1 s
commits, record caches at their defaults, one stream thread, earliest.

    .venv/bin/python bench/compare.py --lines 200000 --logs 200000 --words 2000000
    .venv/bin/python bench/compare.py --phases paced --topologies aggregator --paced-seconds 20

Results: bench/results/compare.json and .md (`--out`), one row per topology
and system, the paced figures under "paced"; compare.png charts throughput.
"""

from __future__ import annotations

import argparse
import collections
import functools
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from services.generate_logs import log_lines  # noqa: E402
from services.logs import is_failed_login, user_of  # noqa: E402
from services.sentences import sentences  # noqa: E402
from services.text_processor import words_of  # noqa: E402

PARTITIONS = 4
# Event time covered by each input: less than the 5 min grace, so that however
# unevenly the partitions of a pre-produced backlog are consumed, no record is
# late (both systems would drop it, and the truth here would not).
SPAN_MS = 120_000
WINDOW_MS = 10_000
URGENT, EMAIL = 100, 50
JAVA = ROOT / "bench" / "java"
# The bench's own virtualenv (bench/requirements.txt): Quix Streams, which pins
# confluent-kafka below 2.13 and so cannot share topicflow's lock, and matplotlib.
BENCH_VENV = ROOT / ".dev" / "bench-venv"
TOPOLOGIES = {
    # topology: (service module, input topic, application name)
    "text-processor": ("services.text_processor", "textlines", "text-processor-app"),
    "aggregator": ("services.aggregator", "words", "aggregator-app"),
    "anomaly-detector": ("services.anomaly_detector", "loglines", "anomaly-detector-app"),
}
# The output topic of each topology (the Aggregator writes to PostgreSQL).
OUTPUTS = {"text-processor": "words", "aggregator": None, "anomaly-detector": "anomalies"}


# -- input and ground truth ----------------------------------------------------------


def timed_lines(count: int, start_ms: int) -> list[tuple[int, str]]:
    step = SPAN_MS / count
    return [
        (start_ms + int(i * step), line)
        for i, line in enumerate(itertools.islice(sentences(seed=42), count))
    ]


def timed_words(lines: list[tuple[int, str]], count: int) -> list[tuple[int, str]]:
    words = ((t, w) for t, line in lines for w in words_of(line))
    return list(itertools.islice(words, count))


def timed_logs(count: int, start_ms: int) -> list[tuple[int, str]]:
    rate = count / (SPAN_MS / 1000)
    return list(itertools.islice(log_lines(seed=42, start_ms=start_ms, rate=rate), count))


def word_window_truth(words: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    return dict(collections.Counter((t - t % WINDOW_MS, w) for t, w in words))


def alert_truth(logs: list[tuple[int, str]]) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(windows above the urgent threshold, windows above only the email one)."""
    counts = collections.Counter(
        (user_of(line), t - t % WINDOW_MS) for t, line in logs if is_failed_login(line)
    )
    urgent = {k for k, n in counts.items() if n > URGENT and k[0]}
    email = {k for k, n in counts.items() if EMAIL < n <= URGENT and k[0]}
    return urgent, email  # type: ignore[return-value]


# -- Kafka and PostgreSQL ------------------------------------------------------------


def produce(bootstrap: str, topic: str, records: list[tuple[int, str]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for i, (timestamp, value) in enumerate(records):
        while True:
            try:
                producer.produce(
                    topic, value.encode(), partition=i % PARTITIONS, timestamp=timestamp
                )
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0


def group_done(reader: Consumer, admin: AdminClient, group: str, topics: list[str]) -> bool:
    """Whether `group` has committed every record of `topics` and of its repartition topics.

    `reader` is a consumer of `group` that never subscribes: it reads committed offsets.
    """
    names = admin.list_topics(timeout=10).topics
    wanted = topics + [
        t
        for t in names
        # Kafka Streams and topicflow: {group}-...-repartition; Quix: repartition__{group}--...
        if (t.startswith(group) and t.endswith("-repartition"))
        or t.startswith(f"repartition__{group}--")
    ]
    partitions = [TopicPartition(t, p) for t in wanted for p in sorted(names[t].partitions)]
    committed = {
        (tp.topic, tp.partition): tp.offset for tp in reader.committed(partitions, timeout=10)
    }
    for tp in partitions:
        high = reader.get_watermark_offsets(tp, timeout=10)[1]
        if high and committed.get((tp.topic, tp.partition), -1) < high:
            return False
    return True


def read_values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    names = consumer.list_topics(topic, timeout=10).topics
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for p in names[topic].partitions
    }
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    values: list[bytes] = []
    remaining = {p for p, end in ends.items() if end}
    while remaining:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is None:
                values.append(message.value())
                if message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
    consumer.close()
    return values


def database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def table(url: str) -> dict[tuple[int, str], int]:
    with psycopg.connect(url) as connection:
        return {
            (r[0], r[1]): r[2]
            for r in connection.execute("SELECT time_window, word, count FROM windowed_counts")
        }


# -- processes -------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds of a process and its threads (and its finished children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_system(
    system: str, topology: str, prefix: str, bootstrap: str, db: str | None, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    module, _topic, app_name = TOPOLOGIES[topology]
    log = open(workdir / f"{system}-{topology}.log", "wb")  # noqa: SIM115 - the process owns it
    if system == "topicflow":
        env = {
            **os.environ,
            "KAFKA_URL": f"kafka://{bootstrap}",
            "KAFKA_PREFIX": prefix,
            "TOPICFLOW_IDEMPOTENT_STATE": "false",
            "TOPICFLOW_COMMIT_INTERVAL_MS": "1000",
            "TOPICFLOW_STATE_DIR": str(workdir / "state"),
        }
        if db:
            env["DATABASE_URL"] = db
        command = [sys.executable, "-m", module]
        marker = "-> RUNNING"
    elif system == "quix":
        command = [
            str(BENCH_VENV / "bin" / "python"), str(ROOT / "bench" / "quix" / "quix_bench.py"),
            topology, bootstrap, prefix, prefix + app_name, str(workdir / "quix-state"),
        ]  # fmt: skip
        if db:
            command.append(db.replace("postgres://", "postgresql://", 1))
        env = dict(os.environ)
        marker = "RUNNING"
    else:
        jars = [str(JAVA / "target" / "kafka-streams-bench.jar")]
        jars += [str(p) for p in sorted((JAVA / "target" / "lib").glob("*.jar"))]
        command = [
            "java", "-cp", ":".join(jars), "topicflow.bench.KafkaStreamsBench",
            topology, bootstrap, prefix, prefix + app_name, str(workdir / "java-state"),
        ]  # fmt: skip
        if db:
            user_url = db.replace("postgres://", "postgresql://", 1)
            rest = user_url.split("://", 1)[1]
            credentials, location = rest.split("@", 1)
            user, password = credentials.split(":", 1)
            command.append(
                f"jdbc:postgresql://{location}?user={user}&password={password}"
                "&reWriteBatchedInserts=true"
            )
        env = dict(os.environ)
        marker = "RUNNING"
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return process, marker


def wait_for(log_path: Path, marker: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in log_path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise exited(log_path)
        time.sleep(0.05)
    raise SystemExit(f"{log_path.name}: no {marker!r} within {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(60)


def exited(log_path: Path) -> SystemExit:
    return SystemExit(f"{log_path.name}: exited\n{log_path.read_text()[-3000:]}")


def fresh_run(system: str, topology: str, bootstrap: str, pg_admin: str) -> tuple[str, str | None]:
    """A prefix of its own with the topology's topics (and a database for the Aggregator)."""
    _module, input_name, _app_name = TOPOLOGIES[topology]
    tag = uuid.uuid4().hex[:6]
    prefix = f"cmp-{system}-{tag}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    output = OUTPUTS[topology]
    names = [prefix + input_name] + ([prefix + output] if output else [])
    if system == "topicflow":
        # The services dead-letter what they skip, to `<prefix><service>-dlq`.
        names.append(f"{prefix}{topology}-dlq")
        if topology == "anomaly-detector":
            # Its users table (empty here, as the Java twin has none).
            names.append(f"{prefix}users")
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(30)
    db = database(pg_admin, f"cmp_{system}_{tag}") if topology == "aggregator" else None
    return prefix, db


# -- one run -------------------------------------------------------------------------


def run(
    system: str,
    topology: str,
    records: list[tuple[int, str]],
    bootstrap: str,
    pg_admin: str,
    truth: Any,
    workdir: Path,
) -> dict[str, Any]:
    _module, input_name, app_name = TOPOLOGIES[topology]
    prefix, db = fresh_run(system, topology, bootstrap, pg_admin)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    produce(bootstrap, prefix + input_name, records)
    process, marker = start_system(system, topology, prefix, bootstrap, db, workdir)
    log_path = workdir / f"{system}-{topology}.log"
    group = prefix + app_name
    probe = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        wait_for(log_path, marker, process, 120)
        cpu0, started = proc_cpu(process.pid), time.monotonic()
        while not group_done(probe, admin, group, [prefix + input_name]):
            if process.poll() is not None:
                raise exited(log_path)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu, rss = proc_cpu(process.pid) - cpu0, proc_peak_rss_mb(process.pid)
        time.sleep(1.5)  # the sinks' last flush (PostgreSQL, alerts) after the last commit
    finally:
        stop(process)
        probe.close()
    result: dict[str, Any] = {
        "system": system,
        "topology": topology,
        "input_records": len(records),
        "seconds": round(elapsed, 2),
        "input_per_s": round(len(records) / elapsed),
        "cpu_s_per_million": round(cpu / len(records) * 1e6, 2),
        "records_per_cpu_s": round(len(records) / cpu) if cpu else None,
        "peak_rss_mb": round(rss, 1),
    }
    result.update(check(topology, truth, bootstrap, prefix, db))
    return result


def check(topology: str, truth: Any, bootstrap: str, prefix: str, db: str | None) -> dict[str, Any]:
    if topology == "text-processor":
        out = len(read_values(bootstrap, prefix + "words"))
        return {
            "records_out": out,
            "correct": out == truth,
            "detail": f"{out} words, {truth} expected",
        }
    if topology == "aggregator":
        assert db is not None
        found = table(db)
        differing = [k for k in truth.keys() | found.keys() if found.get(k) != truth.get(k)]
        wrong = len(differing)
        for k in sorted(differing)[:3]:
            print("differs", k, found.get(k), truth.get(k), file=sys.stderr)
        return {
            "records_out": len(found),
            "correct": wrong == 0,
            "detail": f"{len(found)} rows, {len(truth)} expected, {wrong} differ",
        }
    urgent_truth, email_truth = truth
    alerts = [json.loads(v) for v in read_values(bootstrap, prefix + "anomalies")]
    urgent = {(a["user_id"], a["window_start"]) for a in alerts if a["severity"] == "urgent"}
    email = {(a["user_id"], a["window_start"]) for a in alerts if a["severity"] == "email"}
    correct = urgent == urgent_truth and email_truth <= email
    return {
        "records_out": len(alerts),
        "correct": correct,
        "detail": f"urgent {len(urgent)}/{len(urgent_truth)}, email-only {len(email_truth & email)}"
        f"/{len(email_truth)}",
    }


# -- paced run: end-to-end latency -----------------------------------------------------
#
# The system starts on empty topics; once it is RUNNING, input arrives at a steady
# rate with the wall clock as record time, as in production rather than as a backlog.
# About a hundred input records a second are probes: each carries a word of its own
# (probe000123400: its record's number), produced at a known moment. A probe has
# arrived when its row is in PostgreSQL (Aggregator) or its word is in the output
# topic (Text Processor); its latency is that moment minus the moment it was
# produced, both read from this process's monotonic clock: no clocks need to agree.

PACED_TOPOLOGIES = ("text-processor", "aggregator")
# Bursts of input this often: a steady rate for the system, few wake-ups here.
TICK_S = 0.01
# Pending probes are looked up this often: the measurement's own resolution.
POLL_S = 0.015
# The goal of issue 5: Aggregator p99 under the commit interval plus 200 ms.
LATENCY_TARGET_MS = 1_000 + 200


@dataclass(frozen=True)
class Pacing:
    rate: int  # input records per second
    seconds: float  # of input, warm-up included
    warmup: float  # first seconds, without probes: start-up, JIT, first fetches
    probes_per_s: int
    deadline: float  # seconds after the last input for every probe to arrive


class Probes:
    """Probe words: when each was produced, and the latency of those that arrived.

    Shared by the producing thread (`produced`) and the watching one (`pending`,
    `arrived`), hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[int, float]] = {}  # word: (window start, produced at)
        self._latency: dict[str, float] = {}  # word: seconds

    def produced(self, word: str, timestamp_ms: int, at: float) -> None:
        with self._lock:
            self._pending[word] = (timestamp_ms - timestamp_ms % WINDOW_MS, at)

    def pending(self) -> list[tuple[int, str]]:
        """(window start, word) of the probes not arrived yet."""
        with self._lock:
            return [(window, word) for word, (window, _at) in self._pending.items()]

    def arrived(self, words: Iterable[str], at: float) -> None:
        with self._lock:
            for word in words:
                # Not pending: a replay (at-least-once) or a word that merely looks like one.
                found = self._pending.pop(word, None)
                if found is not None:
                    self._latency[word] = at - found[1]

    def missing(self) -> int:
        with self._lock:
            return len(self._pending)

    def latencies(self) -> list[float]:
        with self._lock:
            return sorted(self._latency.values())


@dataclass
class PacedInput:
    records: list[tuple[int, str]]  # (timestamp, value): for the ground truth
    seconds: float  # measured: after the warm-up
    system_cpu: float  # CPU seconds of the system under test while measured
    harness_cpu: float  # and of this process (producing, watching)


def pace(
    bootstrap: str,
    topic: str,
    source: Iterator[str],
    probe: Callable[[str, str], str],
    pacing: Pacing,
    probes: Probes,
    pid: int,
) -> PacedInput:
    """Produce `pacing.rate` records a second from `source` for `pacing.seconds`.

    After the warm-up, one record in rate / probes_per_s is `probe(record, word)`.
    Records take partitions in turn, as the backlog's do, and the wall clock as
    their timestamp.
    """
    # A producer as an application's: small batches (linger 5 ms), all replicas.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    every = max(1, pacing.rate // pacing.probes_per_s)
    records: list[tuple[int, str]] = []
    started = time.monotonic()
    warm, end = started + pacing.warmup, started + pacing.seconds
    measuring, cpu0, own0 = False, 0.0, 0.0
    tick = started
    while (now := time.monotonic()) < end:
        if now >= warm and not measuring:
            measuring, cpu0, own0 = True, proc_cpu(pid), time.process_time()
        timestamp = int(time.time() * 1000)
        # Records due by now rather than a fixed count per tick: a late tick catches up.
        due = int((now - started) * pacing.rate) + 1
        while len(records) < due:
            value = next(source)
            if now >= warm and len(records) % every == 0:
                word = f"probe{len(records):09d}"
                value = probe(value, word)
                # Before produce(): the watcher cannot see a probe it does not know yet.
                probes.produced(word, timestamp, time.monotonic())
            while True:
                try:
                    producer.produce(
                        topic,
                        value.encode(),
                        partition=len(records) % PARTITIONS,
                        timestamp=timestamp,
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
            records.append((timestamp, value))
        producer.poll(0)
        tick += TICK_S
        time.sleep(max(0.0, tick - time.monotonic()))
    system_cpu, harness_cpu = proc_cpu(pid) - cpu0, time.process_time() - own0
    seconds = time.monotonic() - warm
    assert producer.flush(30) == 0
    return PacedInput(records, seconds, system_cpu, harness_cpu)


def probe_word(_word: str, probe: str) -> str:
    """Aggregator: the probe word instead of an input word."""
    return probe


def probe_line(line: str, probe: str) -> str:
    """Text Processor: an input line with the probe word at its end."""
    return f"{line} {probe}"


def watch_table(url: str, probes: Probes, stopping: threading.Event) -> None:
    """Probes whose (window, word) row is in windowed_counts: the Aggregator's result."""
    # The pending pairs joined on the unique index (time_window, word): a few index
    # lookups per poll, however large the table grows.
    query = (
        "SELECT c.word FROM windowed_counts c "
        "JOIN unnest(%s::bigint[], %s::text[]) AS p(time_window, word) "
        "ON c.time_window = p.time_window AND c.word = p.word WHERE c.count >= 1"
    )
    with psycopg.connect(url, autocommit=True) as connection:
        while not stopping.wait(POLL_S):
            pending = probes.pending()
            if not pending:
                continue
            # A statement sees the rows committed before it started (autocommit: a
            # snapshot per statement), a round trip at most after `asked`: so a probe
            # is stamped at most one poll after its row was committed.
            asked = time.monotonic()
            try:
                rows = connection.execute(
                    query, ([window for window, _ in pending], [word for _, word in pending])
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                continue  # the sink creates its table with its first rows
            probes.arrived((row[0] for row in rows), asked)


def watch_topic(bootstrap: str, topic: str, probes: Probes, stopping: threading.Event) -> None:
    """Probe words in the output topic: the Text Processor's result."""
    # Assigned, not subscribed: reads every partition from its start, in no group.
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"latency-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    try:
        while not stopping.is_set():
            # consume() waits for a full batch or the timeout: a short timeout keeps
            # the arrival time within a few milliseconds of the fetch.
            messages = consumer.consume(1_000, 0.005)
            at = time.monotonic()
            probes.arrived(
                (
                    value.decode()
                    for message in messages
                    if message.error() is None
                    and (value := message.value()) is not None
                    and value.startswith(b"probe")
                ),
                at,
            )
    finally:
        consumer.close()


class Watcher(threading.Thread):
    """Runs `watch(probes, stopping)` until stop(); check() raises the error it died of."""

    def __init__(self, watch: Callable[[Probes, threading.Event], None], probes: Probes) -> None:
        super().__init__(name="watcher", daemon=True)
        self._watch, self._probes = watch, probes
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._watch(self._probes, self._stopping)
        except BaseException as error:  # for check() to raise in the main thread
            self._error = error

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def check(self) -> None:
        if self._error is not None:
            raise self._error


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def paced_run(
    system: str,
    topology: str,
    bootstrap: str,
    pg_admin: str,
    pacing: Pacing,
    workdir: Path,
) -> dict[str, Any]:
    _module, input_name, app_name = TOPOLOGIES[topology]
    prefix, db = fresh_run(system, topology, bootstrap, pg_admin)
    workdir.mkdir(exist_ok=True)
    process, marker = start_system(system, topology, prefix, bootstrap, db, workdir)
    log_path = workdir / f"{system}-{topology}.log"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    group = prefix + app_name
    reader = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    probes = Probes()
    probe: Callable[[str, str], str]
    if topology == "aggregator":
        assert db is not None
        source: Iterator[str] = (w for line in sentences(seed=7) for w in words_of(line))
        probe = probe_word
        watcher = Watcher(functools.partial(watch_table, db), probes)
    else:
        source, probe = sentences(seed=7), probe_line
        watcher = Watcher(functools.partial(watch_topic, bootstrap, f"{prefix}words"), probes)
    try:
        wait_for(log_path, marker, process, 120)
        watcher.start()
        paced = pace(bootstrap, prefix + input_name, source, probe, pacing, probes, process.pid)
        deadline = time.monotonic() + pacing.deadline
        while probes.missing() and time.monotonic() < deadline and watcher.is_alive():
            if process.poll() is not None:
                raise exited(log_path)
            time.sleep(0.1)
        watcher.stop()
        watcher.check()
        # Then the whole output against the truth, as in the throughput runs.
        deadline = time.monotonic() + pacing.deadline
        while not (done := group_done(reader, admin, group, [prefix + input_name])):
            if process.poll() is not None:
                raise exited(log_path)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        rss = proc_peak_rss_mb(process.pid)
        time.sleep(1.5)  # the sinks' last flush after the last commit
    finally:
        if watcher.is_alive():
            watcher.stop()
        stop(process)
        reader.close()
    records = paced.records
    if topology == "aggregator":
        truth: Any = word_window_truth(records)
    else:
        truth = sum(len(words_of(line)) for _, line in records)
    checked = check(topology, truth, bootstrap, prefix, db)
    latencies, missing = [s * 1000 for s in probes.latencies()], probes.missing()
    problems = [f"{missing} probes never arrived"] if missing else []
    problems += [] if done else [f"input not all committed {pacing.deadline} s after the end"]
    problems += [] if checked["correct"] else [checked["detail"]]
    return {
        "rate": pacing.rate,
        "achieved_rate": round(len(records) / pacing.seconds),
        "seconds": pacing.seconds,
        "warmup_seconds": pacing.warmup,
        "input_records": len(records),
        "probes": len(latencies),
        "missing_probes": missing,
        "p50_ms": round(percentile(latencies, 0.50)) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99)) if latencies else None,
        "max_ms": round(latencies[-1]) if latencies else None,
        # CPU seconds per second: the share of one core, while measured.
        "cpu_share": round(paced.system_cpu / paced.seconds, 3),
        "harness_cpu_share": round(paced.harness_cpu / paced.seconds, 3),
        "peak_rss_mb": round(rss, 1),
        "correct": not problems,
        "detail": "; ".join(problems) or checked["detail"],
    }


def markdown(results: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    if throughput := [r for r in results if "input_per_s" in r]:
        lines += [
            "| topology | system | input records/s | CPU s per 1M | records per CPU s "
            "| peak RSS MB | correct |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in throughput:
            correct = "yes" if r["correct"] else "NO: " + r["detail"]
            lines.append(
                f"| {r['topology']} | {r['system']} | {r['input_per_s']:,} "
                f"| {r['cpu_s_per_million']} | {r['records_per_cpu_s']:,} | {r['peak_rss_mb']} "
                f"| {correct} |"
            )
    if paced := [r for r in results if "paced" in r]:
        first = paced[0]["paced"]
        lines += [""] if lines else []
        lines += [
            f"Paced: {first['rate']:,} input records/s for {first['seconds']:g} s, the first "
            f"{first['warmup_seconds']:g} s not measured. Latency from the input's produce() "
            "to its row in PostgreSQL (aggregator) or its word in the output topic (text "
            f"processor). Goal: aggregator p99 under {LATENCY_TARGET_MS:,} ms (commit interval "
            "+ 200 ms). CPU share: CPU seconds per second, of one core.",
            "",
            "| topology | system | input records/s | probes | p50 ms | p99 ms | max ms "
            "| CPU share | correct |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in paced:
            p = r["paced"]
            correct = "yes" if p["correct"] else "NO: " + p["detail"]
            lines.append(
                f"| {r['topology']} | {r['system']} | {p['achieved_rate']:,} | {p['probes']:,} "
                f"| {p['p50_ms']} | {p['p99_ms']} | {p['max_ms']} | {p['cpu_share']} "
                f"| {correct} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="topicflow,java,quix")
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument(
        "--phases",
        default="throughput,paced",
        help="throughput (a pre-produced backlog), paced (latency at a steady rate), or both",
    )
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--logs", type=int, default=2_000_000)
    parser.add_argument("--words", type=int, default=20_000_000)
    parser.add_argument("--paced-rate", type=int, default=10_000, help="input records/s")
    parser.add_argument(
        "--paced-seconds", type=float, default=60, help="of paced input, warm-up included"
    )
    parser.add_argument("--warmup-seconds", type=float, default=5)
    parser.add_argument("--probes-per-s", type=int, default=100)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    phases = args.phases.split(",")
    if not phases or not set(phases) <= {"throughput", "paced"}:
        parser.error(f"--phases: throughput, paced or both, not {args.phases!r}")
    if not 0 <= args.warmup_seconds < args.paced_seconds:
        parser.error("--warmup-seconds must be shorter than --paced-seconds")
    topologies = args.topologies.split(",")
    systems = args.systems.split(",")
    if unknown := set(topologies) - set(TOPOLOGIES):
        parser.error(f"--topologies: no {', '.join(sorted(unknown))}")
    if unknown := set(systems) - {"topicflow", "java", "quix"}:
        parser.error(f"--systems: no {', '.join(sorted(unknown))}")
    from topicflow_dev import up

    dev = up()
    bootstrap = dev.bootstrap_servers
    if "java" in systems and java_stale():
        subprocess.run(["mvn", "-q", "-B", "package"], cwd=JAVA, check=True)
    if not (BENCH_VENV / "bin" / "python").exists():
        uv = shutil.which("uv") or str(ROOT / ".dev" / "tools" / "bin" / "uv")
        quiet = {"UV_PYTHON_DOWNLOADS": "never", **os.environ}
        subprocess.run(
            [uv, "venv", "-q", str(BENCH_VENV), "--python", sys.executable], check=True, env=quiet
        )
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(BENCH_VENV / "bin" / "python"),
             "-r", str(ROOT / "bench" / "requirements.txt")],
            check=True,
            env=quiet,
        )  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="topicflow-compare-"))
    # One row per topology and system, with the figures of each phase run.
    rows = {(t, s): {"system": s, "topology": t} for t in topologies for s in systems}
    if "throughput" in phases:
        for topology, (records, truth) in throughput_inputs(args, topologies).items():
            for system in systems:
                result = run(system, topology, records, bootstrap, dev.database_url, truth, workdir)
                rows[(topology, system)].update(result)
                print(json.dumps(result), flush=True)
    if "paced" in phases:
        pacing = Pacing(
            rate=args.paced_rate,
            seconds=args.paced_seconds,
            warmup=args.warmup_seconds,
            probes_per_s=args.probes_per_s,
            deadline=30,
        )
        for topology in (t for t in topologies if t in PACED_TOPOLOGIES):
            for system in systems:
                paced = paced_run(
                    system, topology, bootstrap, dev.database_url, pacing, workdir / "paced"
                )
                rows[(topology, system)]["paced"] = paced
                print(json.dumps({"system": system, "topology": topology, **paced}), flush=True)
    results = [r for r in rows.values() if len(r) > 2]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "compare.md").write_text(markdown(results))
    print(markdown(results))
    if "throughput" in phases:
        # The chart, drawn by the bench virtualenv's matplotlib.
        subprocess.run(
            [str(BENCH_VENV / "bin" / "python"), str(ROOT / "bench" / "chart.py"),
             str(out / "compare.json"), str(out / "compare.png")],
            check=True,
        )  # fmt: skip
    correct = [r["correct"] for r in results if "correct" in r]
    correct += [r["paced"]["correct"] for r in results if "paced" in r]
    return 0 if all(correct) else 1


def java_stale() -> bool:
    """Whether bench/java's jar is missing or older than its sources."""
    jar = JAVA / "target" / "kafka-streams-bench.jar"
    if not jar.exists():
        return True
    sources = [JAVA / "pom.xml", *(JAVA / "src").rglob("*.java")]
    return max(p.stat().st_mtime for p in sources) > jar.stat().st_mtime


def throughput_inputs(
    args: argparse.Namespace, topologies: list[str]
) -> dict[str, tuple[list[tuple[int, str]], Any]]:
    """Each topology's backlog and its ground truth, in the order asked."""
    start = int(time.time() * 1000) - SPAN_MS
    lines = timed_lines(args.lines, start)
    inputs: dict[str, tuple[list[tuple[int, str]], Any]] = {}
    for topology in topologies:
        if topology == "text-processor":
            inputs[topology] = (lines, sum(len(words_of(line)) for _, line in lines))
        elif topology == "aggregator":
            words = timed_words(lines, args.words)
            inputs[topology] = (words, word_window_truth(words))
        else:
            logs = timed_logs(args.logs, start)
            inputs[topology] = (logs, alert_truth(logs))
    return inputs


if __name__ == "__main__":
    raise SystemExit(main())
