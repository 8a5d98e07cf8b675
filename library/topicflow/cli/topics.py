"""`topicflow topics APP`: the topics an application needs, listed or created.

Its source and sink topics (a global table's compacted), its dead-letter
topic, and its internal topics (repartition and changelog, with their configs:
a changelog must be compacted) named after the application id. On clusters where applications
may not create topics (Heroku's, many managed ones), run this once with a
client that may, or create the listed names with the cluster's own tooling.
"""

from __future__ import annotations

import os

from topicflow.brokers.base import TopicSpec
from topicflow.cli.apps import App
from topicflow.config import KafkaEnv, StreamsConfig
from topicflow.errors import ConfigError
from topicflow.runtime.kafka_streams import broker_for
from topicflow.topology.nodes import SinkNode


def topic_specs(
    app: App, partitions: int, replication_factor: int, application_id: str | None = None
) -> list[TopicSpec]:
    topology = app.topology
    application_id = application_id or (app.config.application_id if app.config else None)
    internal = topology.internal_topics
    if internal and not application_id:
        raise ConfigError(
            f"{app.target} has internal topics, named after the application id: "
            "give --application-id, or name a KafkaStreams (or a function returning one)"
        )
    names = [t for t in topology.source_topics() if t not in internal]
    names += [
        n.topic for n in topology.nodes.values() if isinstance(n, SinkNode) and n.topic is not None
    ]
    names = [n for n in dict.fromkeys(names) if n not in internal]
    if app.config is not None and app.config.errors_dead_letter_queue_topic_name:
        names.append(app.config.errors_dead_letter_queue_topic_name)
    # A global table's topic is its log (it has no changelog): compacted, so that
    # it keeps every key's latest value however old.
    compacted = {g.topic for g in topology.global_stores.values()}
    specs = [
        TopicSpec(
            name,
            partitions,
            replication_factor,
            {"cleanup.policy": "compact"} if name in compacted else None,
        )
        for name in names
    ]
    for topic in internal.values():
        assert application_id is not None
        specs.append(
            TopicSpec(
                topic.full_name(application_id),
                partitions,
                replication_factor,
                dict(topic.config) or None,
            )
        )
    return specs


def create_topics(
    app: App,
    partitions: int,
    replication_factor: int,
    only_list: bool,
    application_id: str | None = None,
) -> int:
    if partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {partitions}")
    specs = topic_specs(app, partitions, replication_factor, application_id)
    if only_list:
        for spec in specs:
            print(spec.name)
        return 0
    if KafkaEnv.read(os.environ).url is None:
        raise ConfigError(
            "KAFKA_URL is not set: the embedded broker creates topics by itself; "
            "set KAFKA_URL to create them on a Kafka cluster"
        )
    config = app.config or StreamsConfig.from_env(application_id or "topicflow-topics", os.environ)
    broker = broker_for(config)
    broker.check_reachable(config.startup_timeout_ms / 1000)
    admin = broker.admin()
    existing = admin.partition_counts([s.name for s in specs], 15.0)
    admin.create_topics([s for s in specs if s.name not in existing], 30.0)
    for spec in specs:
        state = f"exists ({existing[spec.name]} partitions)" if spec.name in existing else "created"
        print(f"{spec.name}: {state}")
    return 0
