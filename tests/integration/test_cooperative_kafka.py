"""Cooperative (incremental) rebalancing with state: only moved partitions stop; counts exact."""

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
    produce,
    table,
    wait_until,
)
from tests.integration.test_scaling_kafka import workload
from topicflow import KafkaStreams, StreamsBuilder, StreamsConfig
from topicflow.errors import ConfigError
from topicflow_dev import DevEnv


def test_cooperative_scaling_moves_only_some_partitions_and_counts_exactly(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"coop-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}words", *dead_letter_topics(prefix)], 6)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_PARTITION_ASSIGNMENT_STRATEGY": "cooperative-sticky",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    words, timestamps, truth = workload(30_000)
    first = ServiceProcess("aggregator", env, tmp_path, "first")
    instances = [first]
    try:
        first.wait_for_log(r"assigned 12 partitions", 30)  # 6 words + 6 repartition
        producer = threading.Thread(
            target=produce,
            args=(dev_env.bootstrap_servers, f"{prefix}words", [w.encode() for w in words]),
            kwargs={"rate": 10_000, "timestamps": timestamps},
        )
        producer.start()
        time.sleep(1.0)
        second = ServiceProcess("aggregator", env, tmp_path, "second")
        instances.append(second)
        second.wait_for_log(r"assigned [1-9]\d* partitions", 30)
        time.sleep(1.0)
        # Incremental: the first member gave up only what the second took, never all 12.
        revoked = [int(n) for n in re.findall(r"revoked (\d+) partitions", first.log())]
        assert revoked and max(revoked) < 12, first.log()
        first.terminate()  # scale in: everything moves to the second
        assert first.wait(30) == 0, first.log()
        producer.join(60)
        wait_until(lambda: table(database) == truth, 90, "exact counts", [second])
        second.terminate()
        assert second.wait(30) == 0, second.log()
    finally:
        for instance in instances:
            instance.stop()


def test_cooperative_is_refused_for_a_task_reading_several_topics(
    dev_env: DevEnv, unique: str
) -> None:
    create_topics(dev_env.bootstrap_servers, [f"a-{unique}", f"b-{unique}", f"out-{unique}"], 2)
    builder = StreamsBuilder()
    builder.stream(f"a-{unique}").merge(builder.stream(f"b-{unique}")).to(f"out-{unique}")
    config = StreamsConfig(
        application_id=f"coop-{unique}",
        bootstrap_servers=dev_env.bootstrap_servers,
        partition_assignment_strategy="cooperative-sticky",
    )
    with pytest.raises(ConfigError, match="use 'range'"):
        KafkaStreams(builder.build(), config).start()
