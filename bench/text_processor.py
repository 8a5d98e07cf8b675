"""Throughput of the Text Processor over a pre-produced input, on Kafka and embedded.

    .venv/bin/python bench/text_processor.py --lines 1000000            # both brokers
    .venv/bin/python bench/text_processor.py --broker kafka --lines 2000000

Kafka: the input (`bench.textlines`, 4 partitions) is produced once and
reused by later runs; each run reads it from the start in a fresh consumer
group into a fresh `bench.words`. Embedded: the input is produced into the
broker inside the child process before the clock starts.

Each measurement runs in a child process: the figures (lines/s, words/s, CPU
seconds, peak RSS) are the stream processor's alone, from the moment the
application is RUNNING to the moment every line is processed, its words
acknowledged by the broker and the offsets committed (`close()`).

Not a test: it asserts only that every line was processed and every word written.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.sentences import sentences  # noqa: E402
from services.text_processor import build_topology, words_of  # noqa: E402
from topicflow import KafkaStreams, Serdes, State, StreamsConfig  # noqa: E402
from topicflow.brokers.base import TopicSpec  # noqa: E402

PARTITIONS = 4
PREFIX = "bench."


def _lines(count: int) -> list[bytes]:
    return [s.encode() for s in itertools.islice(sentences(seed=42), count)]


def _kafka_bootstrap() -> str:
    from topicflow_dev import up

    return up().bootstrap_servers


def _prepare_kafka_input(bootstrap: str, count: int) -> int:
    """Produce `count` lines to bench.textlines unless it already holds that many."""
    from confluent_kafka import Producer

    from topicflow.brokers.kafka import KafkaBroker

    admin = KafkaBroker({"bootstrap.servers": bootstrap}).admin()
    topic = f"{PREFIX}textlines"
    have = admin.partition_counts([topic], 10)
    if have:
        from tests.integration.kafka_tools import end_offsets

        if sum(end_offsets(bootstrap, topic)) == count:
            return sum(len(words_of(line.decode())) for line in _lines(count))
        admin.delete_topics([topic], 30)
        time.sleep(1)
    admin.create_topics([TopicSpec(topic, PARTITIONS)], 30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000})
    words = 0
    for line in _lines(count):
        words += len(words_of(line.decode()))
        while True:
            try:
                producer.produce(topic, line)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    return words


def _fresh_output(admin: Any) -> None:
    topic = f"{PREFIX}words"
    if admin.partition_counts([topic], 10):
        admin.delete_topics([topic], 30)
        deadline = time.monotonic() + 30
        while admin.partition_counts([topic], 10) and time.monotonic() < deadline:
            time.sleep(0.2)
    admin.create_topics([TopicSpec(topic, PARTITIONS)], 30)


def child(broker_kind: str, count: int, expected_words: int, threads: int) -> dict[str, Any]:
    """Run the Text Processor until it has processed `count` lines; return the figures."""
    config = StreamsConfig(
        application_id=f"bench-text-processor-{uuid.uuid4().hex[:8]}",
        bootstrap_servers=_kafka_bootstrap() if broker_kind == "kafka" else None,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=1000,
        num_stream_threads=threads,
        tune_gc=True,  # as the services run
    )
    if broker_kind == "kafka":
        from topicflow.brokers.kafka import KafkaBroker

        broker: Any = KafkaBroker(config.base_client_config())
        _fresh_output(broker.admin())
    else:
        from topicflow.brokers.embedded import EmbeddedBroker

        broker = EmbeddedBroker(default_partitions=PARTITIONS)
        broker.create_topics([TopicSpec(f"{PREFIX}textlines", PARTITIONS)])
        broker.create_topics([TopicSpec(f"{PREFIX}words", PARTITIONS)])
        producer = broker.producer({})
        for line in _lines(count):
            producer.produce(f"{PREFIX}textlines", line)
        producer.flush(10)

    streams = KafkaStreams(build_topology(PREFIX), config, broker=broker)
    streams.start()
    while streams.state is not State.RUNNING:
        time.sleep(0.01)
    cpu0 = time.process_time()
    started = time.monotonic()
    while streams.metrics()["records_consumed"] < count:
        if streams.state is State.ERROR:
            raise SystemExit(f"bench: the application failed: {streams.error}")
        time.sleep(0.02)
    assert streams.close(60)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu0
    metrics = streams.metrics()
    assert metrics["records_consumed"] == count, metrics
    assert metrics["records_produced"] == expected_words, (metrics, expected_words)
    return {
        "broker": broker_kind,
        "threads": threads,
        "lines": count,
        "words": metrics["records_produced"],
        "seconds": round(elapsed, 3),
        "lines_per_s": round(count / elapsed),
        "words_per_s": round(metrics["records_produced"] / elapsed),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--broker", choices=["kafka", "embedded", "both"], default="both")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--expected-words", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.broker, args.lines, args.expected_words, args.threads)))
        return 0

    results = []
    for kind in ["kafka", "embedded"] if args.broker == "both" else [args.broker]:
        if kind == "kafka":
            words = _prepare_kafka_input(_kafka_bootstrap(), args.lines)
        else:
            words = sum(len(words_of(line.decode())) for line in _lines(args.lines))
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                "--broker",
                kind,
                "--lines",
                str(args.lines),
                "--expected-words",
                str(words),
                "--threads",
                str(args.threads),
            ],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "LOG_LEVEL": "WARNING"},
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    header = f"{'broker':<9}{'lines':>10}{'words':>12}{'s':>8}{'lines/s':>10}{'words/s':>11}"
    print(header + f"{'CPU s':>8}{'RSS MB':>8}")
    for r in results:
        print(
            f"{r['broker']:<9}{r['lines']:>10,}{r['words']:>12,}{r['seconds']:>8.2f}"
            f"{r['lines_per_s']:>10,}{r['words_per_s']:>11,}{r['cpu_seconds']:>8.2f}"
            f"{r['peak_rss_mb']:>8.1f}"
        )
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "text_processor.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
