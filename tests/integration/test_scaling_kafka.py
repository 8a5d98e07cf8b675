"""Horizontal scaling with state: Aggregator instances come and go, counts stay exact.

Tasks move on every rebalance and their state follows through the changelog.
Instances are added, removed, and one is killed with SIGKILL mid-run. On the
Heroku-like broker (no transactions) at-least-once with idempotent state (the
services' default) keeps the counts exact; on the plain broker exactly_once_v2
does. A single-kill test shows both sides: with idempotent state the successor
drops the replayed duplicates; plain at-least-once counts them twice.
"""

from __future__ import annotations

import re
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
    dead_letter_topics,
    differences,
    produce,
    table,
    wait_until,
    window_of,
)
from topicflow_dev import DevEnv

PARTITIONS = 6
# About 20 s of input: it spans the scaling steps and the kill.
INPUT_WORDS = 60_000
INPUT_RATE = 3_000
VOCABULARY = ["scale", "out", "in", "rebalance", "state", "follows", "partition", "task"]


def workload(count: int) -> tuple[list[str], list[int], dict[tuple[int, str], int]]:
    start = window_of(int(time.time() * 1000)) - 50_000
    words = [VOCABULARY[(i * 5 + i // 11) % len(VOCABULARY)] for i in range(count)]
    timestamps = [start + i for i in range(count)]
    return words, timestamps, window_truth(words, timestamps)


def window_truth(words: list[str], timestamps: list[int]) -> dict[tuple[int, str], int]:
    """(window start, word) -> count: what windowed_counts must hold."""
    truth: dict[tuple[int, str], int] = {}
    for timestamp, word in zip(timestamps, words, strict=True):
        key = (window_of(timestamp), word)
        truth[key] = truth.get(key, 0) + 1
    return truth


def _converge_then_stop(
    instances: list[ServiceProcess], database: str, truth: dict[tuple[int, str], int]
) -> None:
    """Wait until the survivors' table equals ground truth, then stop them cleanly."""
    try:
        alive = [i for i in instances if i.process.poll() is None]
        wait_until(
            lambda: table(database) == truth,
            150,
            "exact counts after a kill",
            alive,
            lambda: differences(table(database), truth),
        )
        for instance in alive:
            instance.terminate()
        for instance in alive:
            assert instance.wait(30) == 0, instance.log()
    finally:
        for instance in instances:
            instance.stop()


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
        time.sleep(2.0)
        # Mid-stream, so the killed instance has uncommitted work to replay.
        assert produce_all.is_alive(), "input ended before the kill: slow it down"
        instances[1].kill()
        assert instances[1].wait(10) == -9
    produce_all.join(120)
    return instances


def _heroku_aggregator_env(
    heroku_app: HerokuApp, database: str, tmp_path: Path, **settings: str
) -> dict[str, str]:
    """Heroku's variables for the Aggregator, with its topics created by the operator."""
    config = aggregator.SERVICE.config({"KAFKA_PREFIX": heroku_app.prefix})
    heroku_app.create_topics(["words", aggregator.SERVICE.dead_letter_topic], PARTITIONS)
    for internal in aggregator.SERVICE.topology(
        {"KAFKA_PREFIX": heroku_app.prefix}
    ).internal_topics.values():
        name = internal.full_name(config.application_id)
        heroku_app.kafka.create_topics([name], PARTITIONS, dict(internal.config) or None)
        heroku_app.created.append(name)
    return {
        **heroku_app.env,
        "DATABASE_URL": database,
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
        **settings,
    }


def _produce_as_operator(
    heroku_app: HerokuApp, words: list[str], timestamps: list[int]
) -> threading.Thread:
    def produce_all() -> None:
        producer = Producer({"bootstrap.servers": heroku_app.kafka.operator_bootstrap})
        for i, (word, timestamp) in enumerate(zip(words, timestamps, strict=True)):
            producer.produce(heroku_app.topic("words"), word.encode(), timestamp=timestamp)
            if i % 1_000 == 999:
                producer.flush(10)
                time.sleep(1_000 / INPUT_RATE)  # spread the input over the scaling steps
        assert producer.flush(30) == 0

    return threading.Thread(target=produce_all)


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent-state", "plain"])
def test_a_killed_instance_is_replayed_without_counting_twice_on_heroku_like_kafka(
    heroku_app: HerokuApp, database: str, tmp_path: Path, idempotent: bool
) -> None:
    """One instance killed a second after a commit; its successor replays that second.

    With idempotent state (the services' default) the counts stay exact and the
    successor reports the duplicates it dropped. Plain at-least-once counts the
    replay twice: the contrast that shows the kill does replay records.
    """
    env = _heroku_aggregator_env(
        heroku_app,
        database,
        tmp_path,
        TOPICFLOW_COMMIT_INTERVAL_MS="3000",
        TOPICFLOW_IDEMPOTENT_STATE=str(idempotent).lower(),
    )
    words, timestamps, truth = workload(30_000)
    produce_all = _produce_as_operator(heroku_app, words, timestamps)
    killed = ServiceProcess("aggregator", env, tmp_path, "killed")
    killed.wait_for_log(r"assigned \d+ partitions", 30)
    produce_all.start()
    time.sleep(4.0)  # the first commit is at 3 s: a second of uncommitted work
    assert produce_all.is_alive(), "input ended before the kill"
    killed.kill()
    assert killed.wait(10) == -9
    successor = ServiceProcess("aggregator", env, tmp_path, "successor")
    try:
        produce_all.join(60)
        if idempotent:
            wait_until(
                lambda: table(database) == truth,
                90,
                "exact counts after the kill",
                [successor],
                lambda: differences(table(database), truth),
            )
        else:
            wait_until(
                lambda: sum(table(database).values()) > sum(truth.values()),
                90,
                "the replay counted twice",
                [successor],
                lambda: differences(table(database), truth),
            )
        successor.terminate()
        assert successor.wait(30) == 0, successor.log()
        skipped = re.search(r"duplicates_skipped=(\d+)", successor.log())
        assert skipped is not None, successor.log()
        assert (int(skipped.group(1)) > 0) == idempotent
    finally:
        killed.stop()
        successor.stop()


@pytest.mark.parametrize("workers", [1, 2], ids=["1-worker", "2-worker-processes"])
def test_scaling_and_a_killed_instance_on_heroku_like_kafka_keep_counts_exact(
    heroku_app: HerokuApp, database: str, tmp_path: Path, workers: int
) -> None:
    env = _heroku_aggregator_env(
        heroku_app,
        database,
        tmp_path,
        # Long enough that the killed instance has uncommitted work to replay.
        TOPICFLOW_COMMIT_INTERVAL_MS="3000",
        # Vertical scaling too: each instance runs this many worker processes.
        TOPICFLOW_NUM_STREAM_THREADS=str(workers),
    )
    words, timestamps, truth = workload(INPUT_WORDS)
    instances = _scale_during(
        _produce_as_operator(heroku_app, words, timestamps), env, tmp_path, True
    )
    _converge_then_stop(instances, database, truth)


def test_a_killed_instance_among_scaling_ones_changes_no_count_under_exactly_once(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"scale-{unique}."
    create_topics(
        dev_env.bootstrap_servers, [f"{prefix}words", *dead_letter_topics(prefix)], PARTITIONS
    )
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "1000",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    words, timestamps, truth = workload(INPUT_WORDS)
    producer = threading.Thread(
        target=produce,
        args=(dev_env.bootstrap_servers, f"{prefix}words", [w.encode() for w in words]),
        kwargs={"rate": INPUT_RATE, "timestamps": timestamps},
    )
    instances = _scale_during(producer, env, tmp_path, True)
    _converge_then_stop(instances, database, truth)


def test_a_standby_takes_over_a_killed_instance_without_a_full_restore(
    heroku_app: HerokuApp, database: str, tmp_path: Path
) -> None:
    """num_standby_replicas=1 on Heroku-like Kafka: the survivor of a SIGKILL
    resumes the dead instance's tasks from its standby copies."""
    env = _heroku_aggregator_env(
        heroku_app,
        database,
        tmp_path,
        TOPICFLOW_COMMIT_INTERVAL_MS="1000",
        TOPICFLOW_NUM_STANDBY_REPLICAS="1",
    )
    # Many distinct words: a changelog long enough for a full restore to show.
    start = window_of(int(time.time() * 1000)) - 40_000
    words = [f"w{i % 20_000}" for i in range(40_000)]
    timestamps = [start + i for i in range(len(words))]
    truth = window_truth(words, timestamps)
    instances = [ServiceProcess("aggregator", env, tmp_path, f"standby-{i}") for i in range(2)]
    try:
        for instance in instances:
            instance.wait_for_log(r"standby tasks 1_\d", 60)
        producer = _produce_as_operator(heroku_app, words[:30_000], timestamps[:30_000])
        producer.start()
        producer.join(60)
        first_truth = window_truth(words[:30_000], timestamps[:30_000])
        wait_until(lambda: table(database) == first_truth, 90, "the first counts", instances)
        time.sleep(3.0)  # standbys read the last changelog records
        dead, survivor = instances
        dead.kill()
        assert dead.wait(10) == -9
        survivor.wait_for_log(r"takes over its standby's stores", 60)
        producer = _produce_as_operator(heroku_app, words[30_000:], timestamps[30_000:])
        producer.start()
        producer.join(60)
        wait_until(
            lambda: table(database) == truth,
            90,
            "exact counts after the take-over",
            [survivor],
            lambda: differences(table(database), truth),
        )
        survivor.terminate()
        assert survivor.wait(30) == 0, survivor.log()
        log = survivor.log()
        taken = log[log.index("takes over its standby's stores") :]
        restored = [int(n) for n in re.findall(r"restored (\d+) changelog records", taken)]
        # The dead instance's tasks held about 15k changelog records (half of the
        # first 30k words' window counts); the standbys had read them.
        assert sum(restored) < 1_000, taken
    finally:
        for instance in instances:
            instance.stop()
