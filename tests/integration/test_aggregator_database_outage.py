"""The Aggregator while PostgreSQL is down: it keeps running, stops committing, loses nothing.

Words counted while the database is stopped cannot be written; their input
offsets must stay uncommitted (so a crash would replay them), the process must
not exit or crash-loop, and once the database is back the table must equal the
ground truth of everything produced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import topicflow_dev
from tests.integration.kafka_tools import (
    ServiceProcess,
    committed_total,
    create_topics,
    dead_letter_topics,
    end_offsets,
    produce,
    table,
    wait_until,
    window_of,
)
from topicflow_dev import DevEnv


def timed_words(words: list[str], start_ms: int) -> list[tuple[int, str]]:
    return [(start_ms + i * 7, word) for i, word in enumerate(words)]


def truth_of(records: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    truth: dict[tuple[int, str], int] = {}
    for timestamp, word in records:
        key = (window_of(timestamp), word)
        truth[key] = truth.get(key, 0) + 1
    return truth


@pytest.fixture
def postgres_restarted() -> Iterator[None]:
    yield
    topicflow_dev.start_postgres()  # whatever happened, leave it running for the others


def test_database_outage_pauses_commits_and_loses_no_rows(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path, postgres_restarted: None
) -> None:
    prefix = f"outage-{unique}."
    words_topic = f"{prefix}words"
    create_topics(dev_env.bootstrap_servers, [words_topic, *dead_letter_topics(prefix)], 4)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "300",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    vocabulary = ["kafka", "streams", "heroku", "python", "window", "count"]
    start = window_of(int(time.time() * 1000)) - 30_000
    first = timed_words([vocabulary[i % 6] for i in range(3_000)], start)
    second = timed_words([vocabulary[(i * 5) % 6] for i in range(2_000)], start + 21_000)

    aggregator = ServiceProcess("aggregator", env, tmp_path, "aggregator")
    try:
        produce(
            dev_env.bootstrap_servers,
            words_topic,
            [w.encode() for _, w in first],
            timestamps=[t for t, _ in first],
        )
        wait_until(lambda: table(database) == truth_of(first), 60, "first batch", [aggregator])

        topicflow_dev.stop_postgres()
        produce(
            dev_env.bootstrap_servers,
            words_topic,
            [w.encode() for _, w in second],
            timestamps=[t for t, _ in second],
        )
        group = f"{prefix}aggregator-app"
        wait_until(
            lambda: "commit postponed" in aggregator.log(), 30, "a postponed commit", [aggregator]
        )
        time.sleep(3)  # several commit intervals with the database down
        assert aggregator.process.poll() is None, aggregator.log()
        produced = sum(end_offsets(dev_env.bootstrap_servers, words_topic))
        assert produced == 5_000
        # The rows come from the repartition topic's records (the input of the
        # sub-topology holding the sink): those offsets must stay uncommitted, so
        # that a crash now would replay them. (Words already turned into
        # acknowledged repartition records may be committed: nothing is lost.)
        repartition = f"{group}-windowed-counts-repartition"
        written = sum(end_offsets(dev_env.bootstrap_servers, repartition))
        assert committed_total(dev_env.bootstrap_servers, group, repartition, 4) < written

        topicflow_dev.start_postgres()
        wait_until(
            lambda: table(database) == truth_of(first + second), 90, "both batches", [aggregator]
        )
        wait_until(
            lambda: (
                committed_total(dev_env.bootstrap_servers, group, words_topic, 4) == produced
                and committed_total(dev_env.bootstrap_servers, group, repartition, 4)
                == sum(end_offsets(dev_env.bootstrap_servers, repartition))
            ),
            30,
            "commits resumed",
            [aggregator],
        )
        assert "resuming input" in aggregator.log()
        aggregator.terminate()
        assert aggregator.wait(30) == 0, aggregator.log()
    finally:
        aggregator.stop()
