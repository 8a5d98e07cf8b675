"""Joins side by side: topicflow against Java Kafka Streams, per CPU-second, outputs checked.

Two joins a Kafka Streams user writes every day, on the broker of `topicflow
dev up`, each system as its own process on topics of the run's own prefix
(4 partitions, records placed by key with Kafka's default partitioner, so
both sides of a join are co-partitioned):

- `stream-table-join`: `orders` (keyed by customer) left-joined with the
  `customers` table, `order|profile` to `enriched`. The table (10,000
  customers, older timestamps) is produced before the orders.
- `stream-stream-join`: `impressions` joined with `clicks` on the same ad
  within 10 s (grace 5 min), `impression|click` to `attributed`. Every
  impression has one click 2 s later, and impressions of one ad are over 20 s
  apart, so each pair joins exactly once.

The clock runs as in bench/compare.py: from RUNNING until the group has
committed every input record; CPU seconds of the whole process from /proc.
Before its speed counts, each system's output is compared with the truth
computed here from the input (the multiset of output values).

    .venv/bin/python bench/joins.py --records 1000000
    .venv/bin/python bench/joins.py --topologies stream-stream-join --systems topicflow

Results: bench/results/joins.json and .md. The topicflow side is
`python -m bench.joins --app NAME` (below); the Java side is bench/java's
KafkaStreamsBench.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from bench.compare import (  # noqa: E402
    JAVA,
    PARTITIONS,
    exited,
    group_done,
    java_stale,
    markdown,
    proc_cpu,
    proc_peak_rss_mb,
    read_values,
    stop,
    wait_for,
)

CUSTOMERS = 10_000
ADS = 100_000
SPAN_MS = 120_000
CLICK_AFTER_MS = 2_000
APPLICATION = "joins-app"
# topology: (input topics in production order, output topic)
TOPOLOGIES = {
    "stream-table-join": (("customers", "orders"), "enriched"),
    "stream-stream-join": (("impressions", "clicks"), "attributed"),
}

Record = tuple[int, str, str]  # timestamp, key, value


# -- the topicflow side ------------------------------------------------------------------


def enrich(order: str, customer: str | None) -> str:
    """Java's `order + "|" + customer`: a missing customer concatenates as "null"."""
    return f"{order}|{'null' if customer is None else customer}"


def app(name: str) -> int:
    """Run one join with topicflow until SIGTERM (at-least-once, 1 s commits)."""
    from datetime import timedelta

    from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
    from topicflow.runtime.runner import configure_logging, run_until_signal

    configure_logging()
    prefix = os.environ["KAFKA_PREFIX"]
    builder = StreamsBuilder()
    if name == "stream-table-join":
        customers = builder.table(f"{prefix}customers")
        (builder.stream(f"{prefix}orders").left_join(customers, enrich).to(f"{prefix}enriched"))
    else:
        from topicflow import JoinWindows

        clicks = builder.stream(f"{prefix}clicks")
        window = JoinWindows.of_time_difference_and_grace(
            timedelta(seconds=10), timedelta(minutes=5)
        )
        (
            builder.stream(f"{prefix}impressions")
            .join(clicks, lambda impression, click: f"{impression}|{click}", window)
            .to(f"{prefix}attributed")
        )
    config = StreamsConfig.from_env(
        APPLICATION,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        idempotent_state=False,
    )
    return run_until_signal(name, lambda: KafkaStreams(builder.build(), config))


# -- input and ground truth ----------------------------------------------------------------


def inputs(topology: str, count: int, start: int) -> tuple[dict[str, list[Record]], Any]:
    """Each input topic's records, and the multiset of output values they must give."""
    if topology == "stream-table-join":
        profiles = {f"c{i}": f"profile-{i}" for i in range(CUSTOMERS)}
        customers = [(start, k, v) for k, v in profiles.items()]
        step = SPAN_MS / count
        orders = [
            (start + 1 + int(i * step), f"c{(i * 7919) % (CUSTOMERS + CUSTOMERS // 10)}", f"o{i}")
            for i in range(count)
        ]
        truth = collections.Counter(f"{v}|{profiles.get(k, 'null')}" for _, k, v in orders)
        return {"customers": customers, "orders": orders}, truth
    pairs = count // 2
    step = SPAN_MS / pairs
    impressions = [(start + int(i * step), f"ad{i % ADS}", f"i{i}") for i in range(pairs)]
    clicks = [(t + CLICK_AFTER_MS, k, f"c{i}") for i, (t, k, _) in enumerate(impressions)]
    truth = collections.Counter(f"i{i}|c{i}" for i in range(pairs))
    return {"impressions": impressions, "clicks": clicks}, truth


def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    # Placed by key with the default partitioner (murmur2), as Kafka Streams' sinks place them.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
    for timestamp, key, value in records:
        while True:
            try:
                producer.produce(topic, value.encode(), key.encode(), timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0


# -- one run ---------------------------------------------------------------------------------


def start(system: str, topology: str, prefix: str, bootstrap: str, workdir: Path) -> Any:
    log = open(workdir / f"{system}-{topology}.log", "wb")  # noqa: SIM115 - the process owns it
    if system == "topicflow":
        env = {
            **os.environ,
            "KAFKA_URL": f"kafka://{bootstrap}",
            "KAFKA_PREFIX": prefix,
            "TOPICFLOW_COMMIT_INTERVAL_MS": "1000",
            "TOPICFLOW_STATE_DIR": str(workdir / f"state-{prefix}"),
        }
        command = [sys.executable, "-m", "bench.joins", "--app", topology]
        marker = "-> RUNNING"
    else:
        jars = [str(JAVA / "target" / "kafka-streams-bench.jar")]
        jars += [str(p) for p in sorted((JAVA / "target" / "lib").glob("*.jar"))]
        command = [
            "java", "-cp", ":".join(jars), "topicflow.bench.KafkaStreamsBench",
            topology, bootstrap, prefix, prefix + APPLICATION, str(workdir / f"java-{prefix}"),
        ]  # fmt: skip
        env = dict(os.environ)
        marker = "RUNNING"
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return process, marker


def run(
    system: str,
    topology: str,
    records: dict[str, list[Record]],
    truth: collections.Counter[str],
    bootstrap: str,
    workdir: Path,
) -> dict[str, Any]:
    prefix = f"joins-{system}-{uuid.uuid4().hex[:6]}."
    names, output = TOPOLOGIES[topology]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [prefix + n for n in (*names, output)]
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result(30)
    for name in names:
        produce(bootstrap, prefix + name, records[name])
    total = sum(len(r) for r in records.values())
    process, marker = start(system, topology, prefix, bootstrap, workdir)
    log_path = workdir / f"{system}-{topology}.log"
    group = prefix + APPLICATION
    probe = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        wait_for(log_path, marker, process, 120)
        cpu0, started = proc_cpu(process.pid), time.monotonic()
        while not group_done(probe, admin, group, [prefix + n for n in names]):
            if process.poll() is not None:
                raise exited(log_path)
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        cpu, rss = proc_cpu(process.pid) - cpu0, proc_peak_rss_mb(process.pid)
    finally:
        stop(process)
        probe.close()
    found = collections.Counter(v.decode() for v in read_values(bootstrap, prefix + output))
    missing, extra = truth - found, found - truth
    return {
        "system": system,
        "topology": topology,
        "input_records": total,
        "seconds": round(elapsed, 2),
        "input_per_s": round(total / elapsed),
        "cpu_s_per_million": round(cpu / total * 1e6, 2),
        "records_per_cpu_s": round(total / cpu) if cpu else None,
        "peak_rss_mb": round(rss, 1),
        "records_out": sum(found.values()),
        "correct": not missing and not extra,
        "detail": f"{sum(missing.values())} missing, {sum(extra.values())} extra "
        f"(e.g. {list(missing)[:2]} {list(extra)[:2]})",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", help=argparse.SUPPRESS)
    parser.add_argument("--systems", default="topicflow,java")
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument("--records", type=int, default=1_000_000, help="stream records per run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.app:
        return app(args.app)
    topologies, systems = args.topologies.split(","), args.systems.split(",")
    if unknown := set(topologies) - set(TOPOLOGIES):
        parser.error(f"--topologies: no {', '.join(sorted(unknown))}")
    if unknown := set(systems) - {"topicflow", "java"}:
        parser.error(f"--systems: no {', '.join(sorted(unknown))}")
    from topicflow_dev import up

    bootstrap = up().bootstrap_servers
    if "java" in systems and java_stale():
        subprocess.run(["mvn", "-q", "-B", "package"], cwd=JAVA, check=True)
    workdir = Path(tempfile.mkdtemp(prefix="topicflow-joins-"))
    results = []
    start_ms = int(time.time() * 1000) - SPAN_MS - 10_000
    for topology in topologies:
        records, truth = inputs(topology, args.records, start_ms)
        for system in systems:
            result = run(system, topology, records, truth, bootstrap, workdir)
            results.append(result)
            print(json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "joins.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "joins.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if all(r["correct"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
