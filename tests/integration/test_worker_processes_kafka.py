"""num_stream_threads=2 on Kafka: two worker processes share the tasks, results stay exact."""

from __future__ import annotations

import re
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


def test_two_worker_processes_share_the_work_and_stop_cleanly(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"vert-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}words", *dead_letter_topics(prefix)], 4)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_NUM_STREAM_THREADS": "2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "300",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    start = window_of(int(time.time() * 1000)) - 30_000
    words = [("alpha", "beta", "gamma", "delta", "epsilon")[i % 5] for i in range(10_000)]
    timestamps = [start + i * 2 for i in range(len(words))]
    truth: dict[tuple[int, str], int] = {}
    for timestamp, word in zip(timestamps, words, strict=True):
        truth[(window_of(timestamp), word)] = truth.get((window_of(timestamp), word), 0) + 1

    aggregator = ServiceProcess("aggregator", env, tmp_path, "aggregator")
    try:
        # Two members of the group, in two processes, each with its own tasks.
        aggregator.wait_for_log(r"StreamWorker-1 assigned \d+ partitions", 30, count=2)
        produce(
            dev_env.bootstrap_servers,
            f"{prefix}words",
            [w.encode() for w in words],
            timestamps=timestamps,
        )
        wait_until(lambda: table(database) == truth, 90, "windowed_counts", [aggregator])
        # Two processes reported tasks of their own (log lines carry the process id).
        working = set(
            re.findall(r"\[(\d+)\] \S+: \S+ assigned [1-9]\d* partitions", aggregator.log())
        )
        assert len(working) >= 2, aggregator.log()
        aggregator.terminate()
        assert aggregator.wait(40) == 0, aggregator.log()
        assert "stopped cleanly" in aggregator.log()
    finally:
        aggregator.stop()
