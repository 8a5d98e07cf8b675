"""`topicflow topics SERVICE`: the topics a service needs, listed or created.

On clusters where applications may not create topics (Heroku), run this once
with a URL that may, or create the listed names with your cluster's tooling.
"""

from __future__ import annotations

import os

from topicflow.brokers.base import TopicSpec
from topicflow.config import KafkaEnv
from topicflow.errors import ConfigError
from topicflow.runtime.kafka_streams import broker_for


def topic_specs(service_name: str, partitions: int, replication_factor: int) -> list[TopicSpec]:
    from services.registry import SERVICES

    service = SERVICES[service_name]
    prefix = service.prefix()
    config = service.config()
    names = [
        f"{prefix}{t}"
        for t in (*service.input_topics, *service.output_topics, service.dead_letter_topic)
    ]
    specs = [TopicSpec(name, partitions, replication_factor) for name in names]
    # Internal topics keep their configs: a changelog must be compacted.
    for topic in service.topology().internal_topics.values():
        name = topic.full_name(config.application_id)
        specs.append(TopicSpec(name, partitions, replication_factor, dict(topic.config) or None))
    return specs


def service_topics(
    service_name: str, partitions: int, replication_factor: int, only_list: bool
) -> int:
    if partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {partitions}")
    specs = topic_specs(service_name, partitions, replication_factor)
    if only_list:
        for spec in specs:
            print(spec.name)
        return 0
    if KafkaEnv.read(os.environ).url is None:
        raise ConfigError(
            "KAFKA_URL is not set: the embedded broker creates topics by itself; "
            "set KAFKA_URL to create them on a Kafka cluster"
        )
    from services.registry import SERVICES

    config = SERVICES[service_name].config()
    broker = broker_for(config)
    broker.check_reachable(config.startup_timeout_ms / 1000)
    admin = broker.admin()
    existing = admin.partition_counts([s.name for s in specs], 15.0)
    admin.create_topics([s for s in specs if s.name not in existing], 30.0)
    for spec in specs:
        state = f"exists ({existing[spec.name]} partitions)" if spec.name in existing else "created"
        print(f"{spec.name}: {state}")
    return 0
