"""The Text Processor on the real broker, as separate processes in one consumer group.

Ground truth is computed here from the input lines, with a tokenizer written
for the test (not the service's): every word of every line must arrive.
"""

from __future__ import annotations

import itertools
import threading
import time
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

from services.sentences import sentences
from tests.integration.kafka_tools import (
    ServiceProcess,
    committed_total,
    create_topics,
    dead_letter_topics,
    end_offsets,
    produce,
    read_values,
)
from topicflow import KafkaStreams
from topicflow_dev import DevEnv

PARTITIONS = 4


def expected_words(line: str) -> list[str]:
    """Java's split on \\W+ (Unicode), by hand: a word char is alphanumeric, '_' or a mark."""
    words, current = [], []
    for char in line.lower():
        if char.isalnum() or char == "_" or unicodedata.category(char).startswith("M"):
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def make_lines(count: int, seed: int) -> list[str]:
    # A unique token per line, so a lost line cannot hide behind a repeated one.
    return [f"{s} line{i}" for i, s in enumerate(itertools.islice(sentences(seed), count))]


def service_env(dev_env: DevEnv, prefix: str) -> dict[str, str]:
    return {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        # Short, so that the survivor of a SIGKILL gets the partitions in seconds.
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def topics(dev_env: DevEnv, unique: str) -> str:
    prefix = f"it-{unique}."
    create_topics(
        dev_env.bootstrap_servers,
        [f"{prefix}textlines", f"{prefix}words", *dead_letter_topics(prefix)],
        PARTITIONS,
    )
    return prefix


def _run_two_instances_and_stop_one(
    dev_env: DevEnv, prefix: str, tmp_path: Path, kill: bool
) -> tuple[list[str], list[str], ServiceProcess]:
    env = service_env(dev_env, prefix)
    first = ServiceProcess("text-processor", env, tmp_path, "first")
    first.wait_for_log(r"assigned 4 partitions", 30)
    second = ServiceProcess("text-processor", env, tmp_path, "second")
    # Both members share the 4 partitions once the second one has joined.
    second.wait_for_log(r"assigned 2 partitions", 30)
    first.wait_for_log(r"assigned 2 partitions", 30)

    lines = make_lines(30_000, seed=7)
    producer = threading.Thread(
        target=produce,
        args=(dev_env.bootstrap_servers, f"{prefix}textlines", [x.encode() for x in lines]),
        kwargs={"rate": 6000},
    )
    producer.start()
    time.sleep(2.0)  # mid-stream: both instances are processing
    assert sum(end_offsets(dev_env.bootstrap_servers, f"{prefix}words")) > 0
    if kill:
        second.kill()
        assert second.wait(10) == -9
    else:
        second.terminate()
        assert second.wait(30) == 0, second.log()
    # The survivor takes over every partition (after the session timeout if killed).
    first.wait_for_log(r"assigned 4 partitions", 40, count=2)
    producer.join(60)

    expected = [w for line in lines for w in expected_words(line)]
    values = read_values(dev_env.bootstrap_servers, f"{prefix}words", len(expected), 90)
    actual = [v.decode() for v in values if v is not None]
    return expected, actual, first


def test_two_instances_share_partitions_and_a_graceful_stop_hands_over_exactly(
    dev_env: DevEnv, topics: str, tmp_path: Path
) -> None:
    expected, actual, survivor = _run_two_instances_and_stop_one(
        dev_env, topics, tmp_path, kill=False
    )
    # A graceful stop commits after flushing, and the survivor starts from that
    # commit: every word arrives, none twice.
    assert Counter(actual) == Counter(expected)
    survivor.terminate()
    assert survivor.wait(30) == 0, survivor.log()
    assert "stopped cleanly" in survivor.log()
    group = f"{topics}text-processor-app"
    assert committed_total(dev_env.bootstrap_servers, group, f"{topics}textlines", 4) == 30_000


def test_an_instance_killed_mid_stream_loses_nothing(
    dev_env: DevEnv, topics: str, tmp_path: Path
) -> None:
    expected, actual, survivor = _run_two_instances_and_stop_one(
        dev_env, topics, tmp_path, kill=True
    )
    # At-least-once: what the killed instance did since its last commit is done
    # again by the survivor, so words may repeat, but none may be missing.
    missing = Counter(expected) - Counter(actual)
    assert not missing, f"{sum(missing.values())} words lost, e.g. {list(missing)[:5]}"
    assert set(actual) == set(expected)
    survivor.terminate()
    assert survivor.wait(30) == 0, survivor.log()


def test_bad_records_are_skipped_and_counted_and_the_rest_flows(
    dev_env: DevEnv, topics: str
) -> None:
    from services.text_processor import SERVICE

    env = service_env(dev_env, topics)
    config = SERVICE.config(environ=env, commit_interval_ms=200)
    streams = KafkaStreams(SERVICE.topology(environ=env), config)
    values: list[bytes | None] = [b"Good line one", b"\xff\xfe not utf-8", None, b"Good line two"]
    produce(dev_env.bootstrap_servers, f"{topics}textlines", values)
    streams.start()
    try:
        words = read_values(dev_env.bootstrap_servers, f"{topics}words", 6, 30)
    finally:
        assert streams.close(30)
    assert sorted(v.decode() for v in words if v is not None) == sorted(
        ["good", "line", "one", "good", "line", "two"]
    )
    metrics = streams.metrics()
    assert metrics["deserialization_errors"] == 1
    assert metrics["processing_errors"] == 0
    assert streams.error is None


def test_unreachable_broker_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    env = {"KAFKA_URL": "kafka://127.0.0.1:1", "TOPICFLOW_STARTUP_TIMEOUT_MS": "3000"}
    started = time.monotonic()
    process = ServiceProcess("text-processor", env, tmp_path, "unreachable")
    assert process.wait(30) == 2
    assert time.monotonic() - started < 15
    errors = [line for line in process.log().splitlines() if line.startswith("text-processor:")]
    assert len(errors) == 1
    assert "cannot reach Kafka at 127.0.0.1:1" in errors[0]
    assert "Traceback" not in process.log()


def test_missing_source_topic_names_it_and_exits_2(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": f"absent-{unique}."}
    process = ServiceProcess("text-processor", env, tmp_path, "missing")
    assert process.wait(30) == 2
    assert f"source topics missing: absent-{unique}.textlines" in process.log()
    assert "Traceback" not in process.log()


def test_sigterm_leaves_the_group_at_once(dev_env: DevEnv, topics: str, tmp_path: Path) -> None:
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    process = ServiceProcess("text-processor", service_env(dev_env, topics), tmp_path, "idle")
    process.wait_for_log(r"assigned 4 partitions", 30)
    started = time.monotonic()
    process.terminate()
    assert process.wait(30) == 0
    assert time.monotonic() - started < 10
    admin = AdminClient({"bootstrap.servers": dev_env.bootstrap_servers})
    group = f"{topics}text-processor-app"
    description = admin.describe_consumer_groups([group])[group].result(10)
    # Left, not merely dead: no member lingers until a session timeout.
    assert description.state == ConsumerGroupState.EMPTY
    assert not description.members
