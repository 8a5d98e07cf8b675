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
    read_records,
    table,
    wait_until,
)
from tests.integration.test_scaling_kafka import workload
from topicflow import (
    KafkaStreams,
    Materialized,
    Processor,
    Record,
    Serdes,
    State,
    StreamsBuilder,
    StreamsConfig,
)
from topicflow.errors import ConfigError, RetriableError
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


class _FlakySink(Processor[str, str, None, None]):
    """A sink whose flush fails while `failing` is set (an external system down)."""

    failing = threading.Event()

    def process(self, record: Record[str, str]) -> None:
        pass

    def flush(self) -> None:
        if self.failing.is_set():
            raise RetriableError("the sink's database is down")


def test_a_cooperative_revoke_without_commit_rebuilds_the_tasks_it_keeps(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    """Idempotent state closes every task revoked without a commit (its stores are
    ahead of the committed offsets). With cooperative rebalancing a revoke takes
    only some partitions: the tasks of the others are rebuilt from their
    changelogs and committed offsets, and read again; counts stay exact."""
    source, out = f"coop-in-{unique}", f"coop-out-{unique}"
    create_topics(dev_env.bootstrap_servers, [source, out], 6)

    def streams(name: str) -> KafkaStreams:
        builder = StreamsBuilder()
        counts = builder.stream(source).group_by_key().count(Materialized.as_("counts"))
        counts.to_stream().map_values(str).to(out)
        counts.to_stream().process(_FlakySink)
        config = StreamsConfig(
            application_id=f"coop-rebuild-{unique}",
            bootstrap_servers=dev_env.bootstrap_servers,
            partition_assignment_strategy="cooperative-sticky",
            idempotent_state=True,
            commit_interval_ms=200,
            state_dir=str(tmp_path / name),
            default_key_serde=Serdes.String(),
            default_value_serde=Serdes.String(),
        )
        return KafkaStreams(builder.build(), config)

    keys = [f"k{i}".encode() for i in range(30)]
    truth: dict[str, int] = {}

    def send(count: int) -> None:
        batch = [keys[i % len(keys)] for i in range(count)]
        produce(dev_env.bootstrap_servers, source, [b"x"] * count, keys=batch)
        for key in batch:
            truth[key.decode()] = truth.get(key.decode(), 0) + 1

    def latest() -> dict[str, int]:
        found: dict[str, int] = {}
        for message in read_records(dev_env.bootstrap_servers, out, 10):
            found[message.key().decode()] = int(message.value())
        return found

    _FlakySink.failing.clear()
    first = streams("first")
    first.start()
    second: KafkaStreams | None = None
    try:
        wait_until(lambda: first.state is State.RUNNING, 30, "first RUNNING", [])
        send(3_000)
        wait_until(lambda: latest() == truth, 60, "counts of the first batch", [])
        # The sink fails: commits are postponed and input pauses, with records
        # processed but not committed. Then a second member joins.
        _FlakySink.failing.set()
        send(600)
        time.sleep(2.0)
        second = streams("second")
        second.start()
        wait_until(
            lambda: second is not None and second.state is State.RUNNING, 60, "second RUNNING", []
        )
        time.sleep(2.0)
        _FlakySink.failing.clear()
        send(600)
        wait_until(lambda: latest() == truth, 90, "exact counts after the rebalance", [])
        assert first.state is State.RUNNING and second.state is State.RUNNING
        assert first.error is None and second.error is None
    finally:
        _FlakySink.failing.clear()
        first.close(30)
        if second is not None:
            second.close(30)
