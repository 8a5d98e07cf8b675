"""Idempotent state across services: a killed Text Processor does not inflate the counts.

The Text Processor is stateless; killed with SIGKILL, its successor resends
the words of every line since the last commit. Those words carry the same
origins as the first time, so the Aggregator (another application, reading
`words`) drops them: `windowed_counts` equals ground truth computed from the
lines. Plain at-least-once counts the resent words twice: the contrast shows
the kill does resend.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from tests.integration.kafka_tools import (
    ServiceProcess,
    create_topics,
    dead_letter_topics,
    differences,
    produce,
    table,
    wait_until,
    window_of,
)
from tests.integration.test_services_kafka import timed_lines, word_truth
from topicflow_dev import DevEnv

PARTITIONS = 4
LINES = 24_000
RATE = 2_000  # lines/s: 12 s of input, killed after 4 s


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent-state", "plain"])
def test_a_killed_text_processor_changes_no_count(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path, idempotent: bool
) -> None:
    prefix = f"chain-{unique}."
    bootstrap = dev_env.bootstrap_servers
    create_topics(
        bootstrap,
        [f"{prefix}textlines", f"{prefix}words", *dead_letter_topics(prefix)],
        PARTITIONS,
    )
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "3000",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
        "TOPICFLOW_IDEMPOTENT_STATE": str(idempotent).lower(),
    }
    start = window_of(int(time.time() * 1000)) - 30_000
    lines = timed_lines(LINES, seed=23, start_ms=start, span_ms=30_000)
    truth = dict(word_truth(lines))
    producer = threading.Thread(
        target=produce,
        args=(bootstrap, f"{prefix}textlines", [line.encode() for _, line in lines]),
        kwargs={"rate": RATE, "timestamps": [t for t, _ in lines]},
    )
    aggregator = ServiceProcess("aggregator", env, tmp_path, "aggregator")
    killed = ServiceProcess("text-processor", env, tmp_path, "text-processor-killed")
    processes = [aggregator, killed]
    try:
        killed.wait_for_log(r"assigned \d+ partitions", 30)
        aggregator.wait_for_log(r"assigned \d+ partitions", 30)
        producer.start()
        time.sleep(4.0)  # a commit at 3 s, then a second of words sent but not committed
        assert producer.is_alive(), "input ended before the kill"
        killed.kill()
        assert killed.wait(10) == -9
        successor = ServiceProcess("text-processor", env, tmp_path, "text-processor-successor")
        processes.append(successor)
        producer.join(60)
        if idempotent:
            wait_until(
                lambda: table(database) == truth,
                90,
                "exact counts",
                [aggregator, successor],
                lambda: differences(table(database), truth),
            )
        else:
            wait_until(
                lambda: sum(table(database).values()) > sum(truth.values()),
                90,
                "the resent words counted twice",
                [aggregator, successor],
            )
        for process in (successor, aggregator):
            process.terminate()
            assert process.wait(30) == 0, process.log()
        skipped = re.search(r"duplicates_skipped=(\d+)", aggregator.log())
        assert skipped is not None, aggregator.log()
        # The Aggregator saw the resent words, and dropped them only with idempotent state.
        assert (int(skipped.group(1)) > 0) == idempotent
    finally:
        for process in processes:
            process.stop()
