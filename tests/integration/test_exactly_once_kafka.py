"""Exactly-once on real Kafka: an Aggregator instance killed mid-stream changes no count.

Under at-least-once, a SIGKILL can count some words twice: the killed
instance's repartition records and changelog writes since its last commit stay
in Kafka and its input is processed again. Under exactly_once_v2 they belong
to a transaction that is never committed, so read_committed readers ignore
them, and `windowed_counts` must equal the ground truth exactly.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.integration.kafka_tools import (
    ServiceProcess,
    create_topics,
    dead_letter_topics,
    produce,
    table,
    wait_until,
    window_of,
)
from topicflow_dev import DevEnv

VOCABULARY = ["exactly", "once", "kafka", "streams", "python", "heroku", "window", "count"]


def test_a_killed_instance_changes_no_count_under_exactly_once(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"eos-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}words", *dead_letter_topics(prefix)], 4)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "1000",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    start = window_of(int(time.time() * 1000)) - 40_000
    words = [VOCABULARY[(i * 7 + i // 13) % len(VOCABULARY)] for i in range(30_000)]
    timestamps = [start + i for i in range(len(words))]
    truth: dict[tuple[int, str], int] = {}
    for timestamp, word in zip(timestamps, words, strict=True):
        key = (window_of(timestamp), word)
        truth[key] = truth.get(key, 0) + 1

    first = ServiceProcess("aggregator", env, tmp_path, "first")
    second = ServiceProcess("aggregator", env, tmp_path, "second")
    processes = [first, second]
    try:
        first.wait_for_log(r"assigned \d+ partitions", 30)
        second.wait_for_log(r"assigned \d+ partitions", 30)
        producer = threading.Thread(
            target=produce,
            args=(dev_env.bootstrap_servers, f"{prefix}words", [w.encode() for w in words]),
            kwargs={"rate": 8_000, "timestamps": timestamps},
        )
        producer.start()
        time.sleep(1.5)  # both instances are mid-stream, with transactions open
        second.kill()
        assert second.wait(10) == -9
        producer.join(60)
        wait_until(
            lambda: table(database) == truth,
            120,
            "exact windowed_counts",
            [first],
            lambda: str(
                {
                    k: (table(database).get(k), v)
                    for k, v in truth.items()
                    if table(database).get(k) != v
                }
            )[:500],
        )
        first.terminate()
        assert first.wait(30) == 0, first.log()
    finally:
        for process in processes:
            process.stop()
