"""Side by side: topicflow, Java Kafka Streams and Quix Streams on the blog's three topologies.

First cut of issue 5's harness (the chart, the paced latency run and the cost
curves are still to come). On the broker and database of `topicflow dev up`,
for each system and topology:

- the same input (same records, timestamps and partitions: 4) is produced into
  topics of the run's own prefix;
- the system runs as its own process: topicflow's service module, bench/java's
  program, or bench/quix's in a virtualenv of its own;
- the clock runs from the moment it reports RUNNING until its group has
  committed every input and repartition record; CPU seconds (the whole
  process, from /proc, startup excluded) and peak RSS are read from /proc;
- before its speed counts, its outputs are checked against ground truth
  computed here from the input: the number of words, the `windowed_counts`
  table, the alerts.

Settings everywhere: at-least-once (topicflow without idempotent state), 1 s
commits, record caches at their defaults, one stream thread, earliest.

    .venv/bin/python bench/compare.py --lines 200000 --logs 200000 --words 2000000
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
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
            raise SystemExit(f"{log_path.name}: exited\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    raise SystemExit(f"{log_path.name}: no {marker!r} within {timeout} s")


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
    tag = uuid.uuid4().hex[:6]
    prefix = f"cmp-{system}-{tag}."
    admin = AdminClient({"bootstrap.servers": bootstrap})
    outputs = {"text-processor": "words", "aggregator": None, "anomaly-detector": "anomalies"}
    names = [prefix + input_name] + ([prefix + outputs[topology]] if outputs[topology] else [])
    for future in admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names]).values():
        future.result(30)
    produce(bootstrap, prefix + input_name, records)
    db = database(pg_admin, f"cmp_{system}_{tag}") if topology == "aggregator" else None
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
                raise SystemExit(f"{log_path.name}: exited\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu, rss = proc_cpu(process.pid) - cpu0, proc_peak_rss_mb(process.pid)
        time.sleep(1.5)  # the sinks' last flush (PostgreSQL, alerts) after the last commit
    finally:
        process.terminate()
        process.wait(60)
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


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| topology | system | input records/s | CPU s per 1M | records per CPU s "
        "| peak RSS MB | correct |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        correct = "yes" if r["correct"] else "NO: " + r["detail"]
        lines.append(
            f"| {r['topology']} | {r['system']} | {r['input_per_s']:,} | {r['cpu_s_per_million']} "
            f"| {r['records_per_cpu_s']:,} | {r['peak_rss_mb']} | {correct} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="topicflow,java,quix")
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--logs", type=int, default=2_000_000)
    parser.add_argument("--words", type=int, default=20_000_000)
    args = parser.parse_args()
    from topicflow.dev import up

    dev = up()
    bootstrap = dev.bootstrap_servers
    if "java" in args.systems and not (JAVA / "target" / "kafka-streams-bench.jar").exists():
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
    start = int(time.time() * 1000) - SPAN_MS
    lines = timed_lines(args.lines, start)
    inputs: dict[str, tuple[list[tuple[int, str]], Any]] = {}
    topologies = args.topologies.split(",")
    if "text-processor" in topologies:
        inputs["text-processor"] = (lines, sum(len(words_of(line)) for _, line in lines))
    if "aggregator" in topologies:
        words = timed_words(lines, args.words)
        inputs["aggregator"] = (words, word_window_truth(words))
    if "anomaly-detector" in topologies:
        logs = timed_logs(args.logs, start)
        inputs["anomaly-detector"] = (logs, alert_truth(logs))
    workdir = Path(tempfile.mkdtemp(prefix="topicflow-compare-"))
    results = []
    for topology in topologies:
        records, truth = inputs[topology]
        for system in args.systems.split(","):
            result = run(system, topology, records, bootstrap, dev.database_url, truth, workdir)
            results.append(result)
            print(json.dumps(result), flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "compare.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "compare.md").write_text(markdown(results))
    print(markdown(results))
    # The chart, drawn by the bench virtualenv's matplotlib.
    subprocess.run(
        [str(BENCH_VENV / "bin" / "python"), str(ROOT / "bench" / "chart.py"),
         str(out / "compare.json"), str(out / "compare.png")],
        check=True,
    )  # fmt: skip
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
