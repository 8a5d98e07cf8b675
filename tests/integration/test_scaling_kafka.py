"""Horizontal scaling with state: Aggregator instances come and go, counts stay exact.

Tasks move on every rebalance and their state follows through the changelog.
On the Heroku-like broker (no transactions, at-least-once) instances are added
and removed gracefully: each leaving or revoked instance commits first, so the
result is exact. On the plain broker under exactly_once_v2 one instance is also
killed with SIGKILL mid-run, which at-least-once could not survive exactly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from services import aggregator
from tests.integration.heroku_conftest import HerokuApp
from tests.integration.kafka_tools import (
    ServiceProcess,
    create_topics,
    produce,
    table,
    wait_until,
    window_of,
)
from topicflow.dev import DevEnv

PARTITIONS = 6
VOCABULARY = ["scale", "out", "in", "rebalance", "state", "follows", "partition", "task"]


def workload(count: int) -> tuple[list[str], list[int], dict[tuple[int, str], int]]:
    start = window_of(int(time.time() * 1000)) - 50_000
    words = [VOCABULARY[(i * 5 + i // 11) % len(VOCABULARY)] for i in range(count)]
    timestamps = [start + i for i in range(count)]
    truth: dict[tuple[int, str], int] = {}
    for timestamp, word in zip(timestamps, words, strict=True):
        key = (window_of(timestamp), word)
        truth[key] = truth.get(key, 0) + 1
    return words, timestamps, truth


def _scale_during(
    produce_all: threading.Thread, env: dict[str, str], tmp_path: Path, kill: bool
) -> list[ServiceProcess]:
    """3 instances, then a 4th joins, one leaves (SIGTERM) and, with `kill`, one is SIGKILLed."""
    instances = [ServiceProcess("aggregator", env, tmp_path, f"agg-{i}") for i in range(3)]
    for instance in instances:
        instance.wait_for_log(r"assigned \d+ partitions", 30)
    produce_all.start()
    time.sleep(1.0)
    instances.append(ServiceProcess("aggregator", env, tmp_path, "agg-3"))  # scale out
    instances[3].wait_for_log(r"assigned \d+ partitions", 30)
    time.sleep(1.0)
    instances[0].terminate()  # scale in
    assert instances[0].wait(30) == 0, instances[0].log()
    if kill:
        time.sleep(0.5)
        instances[1].kill()
        assert instances[1].wait(10) == -9
    produce_all.join(120)
    return instances


@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-worker-processes"])
def test_scaling_out_and_in_on_heroku_like_kafka_keeps_counts_exact(
    heroku_app: HerokuApp, database: str, tmp_path: Path, workers: int
) -> None:
    config = aggregator.SERVICE.config({"KAFKA_PREFIX": heroku_app.prefix})
    heroku_app.create_topics(["words"], PARTITIONS)
    for internal in aggregator.SERVICE.topology(
        {"KAFKA_PREFIX": heroku_app.prefix}
    ).internal_topics.values():
        name = internal.full_name(config.application_id)
        heroku_app.kafka.create_topics([name], PARTITIONS, dict(internal.config) or None)
        heroku_app.created.append(name)
    env = {
        **heroku_app.env,
        "DATABASE_URL": database,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
        # Vertical scaling too: each instance runs this many worker processes.
        "TOPICFLOW_NUM_STREAM_THREADS": str(workers),
    }
    words, timestamps, truth = workload(40_000)

    def produce_as_operator() -> None:
        producer = Producer({"bootstrap.servers": heroku_app.kafka.operator_bootstrap})
        for i, (word, timestamp) in enumerate(zip(words, timestamps, strict=True)):
            producer.produce(heroku_app.topic("words"), word.encode(), timestamp=timestamp)
            if i % 2_000 == 1_999:
                producer.flush(10)
                time.sleep(0.1)  # spread the input over the scaling steps
        assert producer.flush(30) == 0

    instances = _scale_during(threading.Thread(target=produce_as_operator), env, tmp_path, False)
    try:
        alive = [i for i in instances if i.process.poll() is None]
        wait_until(lambda: table(database) == truth, 120, "exact counts after scaling", alive)
        for instance in alive:
            instance.terminate()
        for instance in alive:
            assert instance.wait(30) == 0, instance.log()
    finally:
        for instance in instances:
            instance.stop()


def test_a_killed_instance_among_scaling_ones_changes_no_count_under_exactly_once(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"scale-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}words"], PARTITIONS)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "1000",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    words, timestamps, truth = workload(40_000)
    producer = threading.Thread(
        target=produce,
        args=(dev_env.bootstrap_servers, f"{prefix}words", [w.encode() for w in words]),
        kwargs={"rate": 8_000, "timestamps": timestamps},
    )
    instances = _scale_during(producer, env, tmp_path, True)
    try:
        alive = [i for i in instances if i.process.poll() is None]
        wait_until(lambda: table(database) == truth, 150, "exact counts after a kill", alive)
        for instance in alive:
            instance.terminate()
        for instance in alive:
            assert instance.wait(30) == 0, instance.log()
    finally:
        for instance in instances:
            instance.stop()
