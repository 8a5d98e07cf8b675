"""Throughput of the three services over pre-produced input, on Kafka or embedded.

    .venv/bin/python bench/services.py                       # all three, on Kafka
    .venv/bin/python bench/services.py --service aggregator --records 2000000
    .venv/bin/python bench/services.py --broker embedded

Inputs (4 partitions, produced once and reused by later runs on Kafka):
`bench.textlines` (sentences), `bench.words` (the words of those sentences,
with timestamps spread over 10 minutes), `bench.loglines` (web log lines with
attackers). Each run reads its input from the start in a fresh consumer group,
in a child process, and is timed from RUNNING until every input record is
processed, its output acknowledged and its offsets committed (`close()`).
The Aggregator writes to PostgreSQL (`topicflow dev up`) on Kafka, SQLite on
the embedded broker.

Input records/s count the service's input topic only (the Aggregator also
reads every word a second time from its repartition topic).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services import aggregator, anomaly_detector, text_processor  # noqa: E402
from services.generate_logs import log_lines  # noqa: E402
from services.sentences import sentences  # noqa: E402
from topicflow import KafkaStreams, State  # noqa: E402
from topicflow.brokers.base import TopicSpec  # noqa: E402

PARTITIONS = 4
PREFIX = "bench."
# Event time of the inputs: the last 10 minutes, so the broker keeps them.
SPAN_MS = 600_000


def _inputs(service: str, count: int, start_ms: int) -> tuple[str, Iterator[tuple[int, bytes]]]:
    step = SPAN_MS / count
    if service == "text-processor":
        lines = itertools.islice(sentences(seed=42), count)
        return "textlines", ((start_ms + int(i * step), s.encode()) for i, s in enumerate(lines))
    if service == "aggregator":
        words = (w for s in sentences(seed=42) for w in text_processor.words_of(s))
        picked = itertools.islice(words, count)
        return "words", ((start_ms + int(i * step), w.encode()) for i, w in enumerate(picked))
    rate = count / (SPAN_MS / 1000)
    logs = itertools.islice(log_lines(seed=42, start_ms=start_ms, rate=rate), count)
    return "loglines", ((t, line.encode()) for t, line in logs)


def _topology(service: str, workdir: Path) -> Any:
    if service == "text-processor":
        return text_processor.build_topology(PREFIX)
    if service == "aggregator":
        from services.windowed_counts import windowed_count_sink_from_env

        return aggregator.build_topology(PREFIX, sink=windowed_count_sink_from_env())
    from services.notifications.delivery import LogAlerts, LogEmails
    from services.notifications.processors import AlertSink, EmailSink

    return anomaly_detector.build_topology(
        PREFIX, alerts=AlertSink(LogAlerts(), 100), emails=EmailSink(LogEmails(None), 50)
    )


SERVICES: dict[str, Any] = {
    "text-processor": text_processor.SERVICE,
    "aggregator": aggregator.SERVICE,
    "anomaly-detector": anomaly_detector.SERVICE,
}


def _prepare_kafka(bootstrap: str, service: str, count: int) -> None:
    from confluent_kafka import Producer

    from tests.integration.kafka_tools import end_offsets
    from topicflow.brokers.kafka import KafkaBroker

    admin = KafkaBroker({"bootstrap.servers": bootstrap}).admin()
    topic_name, _ = _inputs(service, 1, 0)
    topic = PREFIX + topic_name
    marker = ROOT / "bench" / "results" / f".input-{topic_name}.json"
    # The Anomaly Detector's users table too (empty here: notifications without profiles).
    outputs = [PREFIX + t for t in ("words", "anomalies", "users") if t != topic_name]
    outputs += [PREFIX + f"{name}-dlq" for name in SERVICES]
    admin.create_topics([TopicSpec(t, PARTITIONS) for t in outputs], 30)
    if admin.partition_counts([topic], 10):
        fresh = marker.exists() and json.loads(marker.read_text()) == {
            "count": count,
            "spread": "round-robin",
        }
        if fresh and sum(end_offsets(bootstrap, topic)) == count:
            return
        admin.delete_topics([topic], 30)
        time.sleep(2)
    admin.create_topics([TopicSpec(topic, PARTITIONS)], 30)
    # Output and dead-letter topics the services write (never auto-created on the
    # dev broker).
    # The Anomaly Detector's users table too (empty here: notifications without profiles).
    outputs = [PREFIX + t for t in ("words", "anomalies", "users") if t != topic_name]
    outputs += [PREFIX + f"{name}-dlq" for name in SERVICES]
    admin.create_topics([TopicSpec(t, PARTITIONS) for t in outputs], 30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    _, records = _inputs(service, count, int(time.time() * 1000) - SPAN_MS)
    # Round-robin over the partitions: even partitions, so that two workers get
    # equal shares (librdkafka's sticky partitioner leaves them uneven by 50%).
    for i, (timestamp, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, partition=i % PARTITIONS, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(json.dumps({"count": count, "spread": "round-robin"}))


def child(service: str, broker_kind: str, count: int, threads: int = 1) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="topicflow-bench-"))
    environ = {"TOPICFLOW_SQLITE_PATH": str(workdir / "counts.sqlite3")}
    # Settings under comparison pass through (e.g. TOPICFLOW_IDEMPOTENT_STATE=false).
    environ.update({k: v for k, v in os.environ.items() if k.startswith("TOPICFLOW_")})
    if broker_kind == "kafka":
        from topicflow_dev import up

        dev = up()
        environ.update(KAFKA_URL=dev.kafka_url, DATABASE_URL=dev.database_url)
    os.environ.update(environ)
    config = SERVICES[service].config(
        environ=environ,
        application_id=f"bench-{service}-{uuid.uuid4().hex[:8]}",
        state_dir=str(workdir / "state"),
        num_stream_threads=threads,
        errors_dead_letter_queue_topic_name=PREFIX + SERVICES[service].dead_letter_topic,
    )
    topic_name, records = _inputs(service, count, int(time.time() * 1000) - SPAN_MS)
    broker: Any = None
    if broker_kind == "embedded":
        from topicflow.brokers.embedded import EmbeddedBroker

        broker = EmbeddedBroker(default_partitions=PARTITIONS, retention_records=10_000_000)
        producer = broker.producer({})
        for timestamp, value in records:
            producer.produce(PREFIX + topic_name, value, timestamp=timestamp)
        producer.flush(10)
    streams = KafkaStreams(_topology(service, workdir), config, broker=broker)
    streams.start()
    while streams.state is not State.RUNNING:
        if streams.state is State.ERROR:
            raise SystemExit(f"bench: {service} failed: {streams.error}")
        time.sleep(0.01)
    cpu0, started = _cpu(), time.monotonic()
    wanted = count * (2 if service == "aggregator" else 1)
    if service == "anomaly-detector":
        wanted = count + _failed_logins(count)
    # Steady state: from 10% to 90% of the input, once every worker has tasks (the
    # group's rebalances and the last, partial batches are outside the window).
    window: dict[str, tuple[float, int]] = {}
    while (consumed := streams.metrics().get("records_consumed", 0)) < wanted:
        if streams.state is State.ERROR:
            raise SystemExit(f"bench: {service} failed: {streams.error}")
        spread = sum(1 for tasks in streams.tasks().values() if tasks) >= threads
        if "from" not in window and spread and consumed >= wanted * 0.1:
            window["from"] = (time.monotonic(), consumed)
        if "from" in window and "to" not in window and consumed >= wanted * 0.9:
            window["to"] = (time.monotonic(), consumed)
        time.sleep(0.02)
    # The clock stops when the input is consumed: closing (commit, leaving the
    # group, and with worker processes their exit) is not throughput. CPU is
    # read after it: a worker process's CPU is known once it has exited.
    elapsed = time.monotonic() - started
    assert streams.close(60)
    cpu = _cpu() - cpu0
    metrics = streams.metrics()
    return {
        "service": service,
        "broker": broker_kind,
        "workers": threads,
        "input_records": count,
        "seconds": round(elapsed, 3),
        "input_per_s": round(count / elapsed),
        "steady_input_per_s": _steady_rate(window, count / wanted),
        "records_out": metrics["records_produced"],
        "cpu_seconds": round(cpu, 2),
        "cpu_s_per_million": round(cpu / count * 1e6, 2),
        # With worker processes, the largest worker's peak (RUSAGE_CHILDREN: max of children).
        "peak_rss_mb": round(
            max(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
            )
            / 1024,
            1,
        ),
    }


def _steady_rate(window: dict[str, tuple[float, int]], input_share: float) -> int | None:
    """Input records/s between 10% and 90% of the work (None if the run was too short)."""
    if "from" not in window or "to" not in window:
        return None
    (t0, c0), (t1, c1) = window["from"], window["to"]
    return round((c1 - c0) * input_share / (t1 - t0)) if t1 > t0 else None


def _cpu() -> float:
    """CPU seconds of this process and of its finished worker processes."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def _failed_logins(count: int) -> int:
    """Failed logins reach the repartition topic and are consumed a second time."""
    from services.logs import is_failed_login, parse_log_line

    _, records = _inputs("anomaly-detector", count, 0)
    return sum(
        1
        for _, line in records
        if is_failed_login(line.decode()) and parse_log_line(line.decode()) is not None
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--service", choices=[*SERVICES, "all"], default="all")
    parser.add_argument("--broker", choices=["kafka", "embedded"], default="kafka")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1, help="stream workers (processes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    services = list(SERVICES) if args.service == "all" else [args.service]
    if args.child:
        print(json.dumps(child(services[0], args.broker, args.records, args.threads)))
        return 0
    results = []
    for service in services:
        if args.broker == "kafka":
            from topicflow_dev import up

            _prepare_kafka(up().bootstrap_servers, service, args.records)
        run: Callable[..., Any] = subprocess.run
        out = run(
            [
                sys.executable,
                __file__,
                "--child",
                "--service",
                service,
                "--broker",
                args.broker,
                "--records",
                str(args.records),
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"{'service':<18}{'broker':<10}{'workers':>8}{'input':>11}{'s':>8}{'input/s':>10}"
        f"{'steady/s':>10}{'out':>11}{'CPU s/M':>9}{'RSS MB':>8}"
    )
    for r in results:
        steady = f"{r['steady_input_per_s']:,}" if r["steady_input_per_s"] else "-"
        print(
            f"{r['service']:<18}{r['broker']:<10}{r['workers']:>8}{r['input_records']:>11,}"
            f"{r['seconds']:>8.2f}{r['input_per_s']:>10,}{steady:>10}{r['records_out']:>11,}"
            f"{r['cpu_s_per_million']:>9.2f}{r['peak_rss_mb']:>8.1f}"
        )
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    suffix = "" if args.threads == 1 else f"-{args.threads}-workers"
    output = results_dir / f"services-{args.broker}{suffix}.json"
    output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
