"""Co-partitioning on Kafka: a join of topics with different partition counts
fails at start in one line; a re-keyed join's repartition topic is created with
the table's partition count."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.kafka_tools import create_topics
from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.errors import TopologyError
from topicflow_dev import DevEnv


def _config(dev_env: DevEnv, application_id: str) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        bootstrap_servers=dev_env.bootstrap_servers,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
    )


def _join(prefix: str, rekey: bool) -> StreamsBuilder:
    builder = StreamsBuilder()
    table = builder.table(f"{prefix}users")
    clicks = builder.stream(f"{prefix}clicks")
    if rekey:
        clicks = clicks.select_key(lambda _k, v: v)
    clicks.join(table, lambda page, team: f"{page}@{team}").to(f"{prefix}enriched")
    return builder


def test_a_join_of_topics_with_different_partition_counts_fails_at_start(
    dev_env: DevEnv, unique: str
) -> None:
    prefix = f"copart-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}users"], 3)
    create_topics(dev_env.bootstrap_servers, [f"{prefix}clicks", f"{prefix}enriched"], 4)
    streams = KafkaStreams(_join(prefix, False).build(), _config(dev_env, f"{prefix}app"))
    with pytest.raises(TopologyError) as raised:
        streams.start()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"topics not co-partitioned: {prefix}clicks has 4 partitions, "
        f"{prefix}users has 3 partitions;"
    )
    streams.close(5)


def test_a_rekeyed_joins_repartition_topic_gets_the_tables_partition_count(
    dev_env: DevEnv, unique: str
) -> None:
    prefix = f"copart-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}users"], 2)
    create_topics(dev_env.bootstrap_servers, [f"{prefix}clicks", f"{prefix}enriched"], 4)
    application_id = f"{prefix}app"
    streams = KafkaStreams(_join(prefix, True).build(), _config(dev_env, application_id))
    streams.start()
    try:
        name = f"{application_id}-KSTREAM-KEY-SELECT-0000000004-repartition"
        metadata = AdminClient({"bootstrap.servers": dev_env.bootstrap_servers}).list_topics(
            timeout=10
        )
        assert len(metadata.topics[name].partitions) == 2
    finally:
        assert streams.close(30)
    assert streams.error is None
