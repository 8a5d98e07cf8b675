"""PartitionGroup on Kafka: a task reading two topics processes their records in
timestamp order under both guarantees, and with max_task_idle_ms=0 does not wait
for a caught-up partition, even one that ends with a transaction marker (what
librdkafka reports of positions and watermarks: runtime/partition_group.py's
ConsumerLag)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from tests.integration.kafka_tools import create_topics, produce, read_values
from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow_dev import DevEnv


def _merge(prefix: str) -> StreamsBuilder:
    builder = StreamsBuilder()
    builder.stream([f"{prefix}left", f"{prefix}right"]).to(f"{prefix}out")
    return builder


def _config(dev_env: DevEnv, application_id: str, guarantee: str) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        bootstrap_servers=dev_env.bootstrap_servers,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        processing_guarantee=guarantee,  # type: ignore[arg-type]
        commit_interval_ms=200,
        max_poll_records=7,
    )


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once_v2"])
def test_two_topics_are_processed_in_timestamp_order(
    dev_env: DevEnv, unique: str, guarantee: str
) -> None:
    prefix = f"pgroup-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}{t}" for t in ("left", "right", "out")], 1)
    # Interleaved timestamps; the right topic's records are produced first.
    right = [f"R{2 * i + 1}".encode() for i in range(200)]
    left = [f"L{2 * i}".encode() for i in range(200)]
    produce(
        dev_env.bootstrap_servers,
        f"{prefix}right",
        right,
        keys=[b"k"] * 200,
        timestamps=[1001 + 2 * i for i in range(200)],
    )
    produce(
        dev_env.bootstrap_servers,
        f"{prefix}left",
        left,
        keys=[b"k"] * 200,
        timestamps=[1000 + 2 * i for i in range(200)],
    )
    streams = KafkaStreams(_merge(prefix).build(), _config(dev_env, f"{prefix}app", guarantee))
    streams.start()
    try:
        values = read_values(dev_env.bootstrap_servers, f"{prefix}out", 400, 60)
    finally:
        assert streams.close(30)
    assert streams.error is None
    assert [int(v[1:]) for v in values if v is not None] == list(range(400))


def test_a_caught_up_partition_ending_with_a_transaction_marker_is_not_waited_for(
    dev_env: DevEnv, unique: str
) -> None:
    prefix = f"pgroup-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}{t}" for t in ("left", "right", "out")], 1)
    # The right topic written in a transaction: its log ends with a commit marker,
    # which no consumer ever receives as a record.
    producer = Producer(
        {"bootstrap.servers": dev_env.bootstrap_servers, "transactional.id": f"{prefix}tx"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(f"{prefix}right", b"R0", b"k", timestamp=1)
    producer.commit_transaction(30)
    config = _config(dev_env, f"{prefix}app", "at_least_once")
    streams = KafkaStreams(_merge(prefix).build(), config)
    streams.start()
    try:
        assert read_values(dev_env.bootstrap_servers, f"{prefix}out", 1, 30) == [b"R0"]
        started = time.monotonic()
        produce(dev_env.bootstrap_servers, f"{prefix}left", [b"L5"], keys=[b"k"], timestamps=[5])
        values = read_values(dev_env.bootstrap_servers, f"{prefix}out", 2, 30)
        assert values == [b"R0", b"L5"]
        assert time.monotonic() - started < 15
    finally:
        assert streams.close(30)
    assert streams.error is None
