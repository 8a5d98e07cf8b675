"""The topics a `KafkaStreams` application reads and writes, made ready at start.

As Kafka Streams' InternalTopicManager: before any worker runs, the source and
sink topics must exist, and the internal topics (repartition topics and store
changelogs, named after the application id) are created with the partition
counts Kafka Streams gives them. The producer is also fitted to the smallest
max.message.bytes of the topics written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from topicflow.brokers.base import Admin, TopicSpec
from topicflow.config import StreamsConfig
from topicflow.errors import MissingSourceTopics, TopicflowError
from topicflow.topology.topology import SubTopology, Topology

__all__ = [
    "LIBRDKAFKA_MESSAGE_MAX_BYTES",
    "fit_producer_to_topics",
    "internal_topic_specs",
    "prepare_topics",
]

log = logging.getLogger(__name__)

# librdkafka's default message.max.bytes: the largest batch a producer sends.
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000


def prepare_topics(
    admin: Admin,
    topology: Topology,
    subtopologies: list[SubTopology],
    config: StreamsConfig,
    create_missing: bool,
    timeout: float,
) -> None:
    """Check the source and sink topics exist, then create the internal topics missing.

    With `create_missing` (the embedded broker: zero set-up), missing source and
    sink topics are created too, with 4 partitions.
    """
    internal = topology.internal_topics
    sources = sorted({t for s in subtopologies for t in s.source_topics if t not in internal})
    # Sinks too: where topics are not auto-created (Heroku), producing to a
    # missing one would only fail after librdkafka's metadata timeout.
    sinks = sorted(
        {t for s in subtopologies for t in s.sink_topics if t not in internal} - set(sources)
    )
    dlq = config.errors_dead_letter_queue_topic_name
    if dlq is not None and dlq not in sources and dlq not in sinks:
        # Records the handlers skip go there; a topic missing would only show
        # at the first bad record, as a failed delivery.
        sinks.append(dlq)
    counts = admin.partition_counts([*sources, *sinks], timeout)
    missing = [t for t in [*sources, *sinks] if t not in counts]
    if missing and create_missing:
        # Zero-setup: the embedded broker makes what the demo needs.
        admin.create_topics([TopicSpec(t, 4) for t in missing], timeout)
        counts.update(admin.partition_counts(missing, timeout))
        missing = []
    if missing == [dlq]:
        raise MissingSourceTopics(
            f"dead-letter queue topic {dlq!r} (errors_dead_letter_queue_topic_name) does "
            "not exist; create it (`topicflow topics SERVICE`, or your cluster's tooling) "
            "or unset the setting, and start again"
        )
    if missing:
        # The dead-letter topic counts among the sinks here: when others are
        # missing too, the prefix or the set-up is the likelier cause.
        parts = [
            f"{kind} topics missing: {', '.join(t for t in missing if t in names)}"
            for kind, names in (("source", sources), ("sink", sinks))
            if not set(missing).isdisjoint(names)
        ]
        raise MissingSourceTopics(
            f"{'; '.join(parts)}; create them (`topicflow topics SERVICE --partitions N`, "
            "or your cluster's tooling) and start again (on multi-tenant plans, topics "
            "the app may not read look missing too: check KAFKA_PREFIX)"
        )
    specs = internal_topic_specs(topology, subtopologies, counts, config.application_id)
    existing = admin.partition_counts([s.name for s in specs], timeout)
    to_create = [s for s in specs if s.name not in existing]
    if to_create:
        log.info("creating internal topics: %s", ", ".join(s.name for s in to_create))
        try:
            admin.create_topics(to_create, timeout)
        except TopicflowError as error:
            raise MissingSourceTopics(
                f"internal topics missing and not creatable ({error}); create them with "
                "`topicflow topics SERVICE` and start again"
            ) from None


def fit_producer_to_topics(
    admin: Admin,
    topology: Topology,
    subtopologies: list[SubTopology],
    config: StreamsConfig,
    resolve_topic: Callable[[str], str],
    timeout: float,
) -> StreamsConfig:
    """Keep record batches within the smallest max.message.bytes of the topics written.

    librdkafka cannot know a topic's limit: a batch over it is refused whole by
    the broker, innocent records with the guilty one. With the producer's
    message.max.bytes at the limit, an oversized record is refused by
    produce() itself, alone, while its source record is at hand for the
    production handler and the dead-letter queue. Returns `config`, with the
    producer's limit lowered if a topic needs it.
    """
    if "message.max.bytes" in {**config.client_config, **config.producer_config}:
        return config  # the user's choice
    written = {resolve_topic(t) for s in subtopologies for t in s.sink_topics}
    written |= {
        resolve_topic(name)
        for name, topic in topology.internal_topics.items()
        if topic.kind == "changelog"
    }
    if config.errors_dead_letter_queue_topic_name:
        written.add(config.errors_dead_letter_queue_topic_name)
    try:
        limits = admin.max_message_bytes(sorted(written), timeout)
    except Exception as error:  # configs unreadable (ACLs): keep librdkafka's default
        log.info("cannot read the output topics' max.message.bytes (%s)", error)
        return config
    if not limits:
        return config
    smallest = min(limits.values())
    if smallest < LIBRDKAFKA_MESSAGE_MAX_BYTES:
        topic = min(limits, key=lambda name: limits[name])
        log.info(
            "producer message.max.bytes lowered to %d: the max.message.bytes of %s",
            smallest,
            topic,
        )
        return config.with_overrides(
            producer_config={
                **config.producer_config,
                "message.max.bytes": smallest,
                "batch.size": smallest,
            }
        )
    return config


def internal_topic_specs(
    topology: Topology,
    subtopologies: list[SubTopology],
    counts: dict[str, int],
    application_id: str,
) -> list[TopicSpec]:
    """Repartition topics get their configured partitions, else as many as their upstream
    sub-topology's widest source topic (Kafka Streams' rule)."""
    internal = topology.internal_topics
    partitions: dict[str, int] = {}
    for name, topic in internal.items():
        if topic.partitions is not None:
            partitions[name] = topic.partitions
    # Upstream counts may themselves be internal: resolve until nothing changes.
    changed = True
    while changed:
        changed = False
        for sub in subtopologies:
            # Co-partitioned topics take the width of the tables their reader meets.
            others = [
                counts.get(t) or partitions.get(t)
                for t in sub.source_topics
                if t not in internal or not internal[t].co_partitioned
            ]
            if others and all(w is not None for w in others):
                for t in sub.source_topics:
                    if t in internal and internal[t].co_partitioned and t not in partitions:
                        partitions[t] = max(w for w in others if w is not None)
                        changed = True
            widths = [counts.get(t) or partitions.get(t) for t in sub.source_topics]
            if not widths or any(w is None for w in widths):
                continue
            width = max(w for w in widths if w is not None)
            # A store's changelog has one partition per task of the sub-topology using it.
            changelogs = [
                f"{store}-changelog" for node in sub.nodes for store in getattr(node, "stores", ())
            ]
            for topic_name in [*sub.sink_topics, *changelogs]:
                if (
                    topic_name in internal
                    and topic_name not in partitions
                    and not internal[topic_name].co_partitioned
                ):
                    partitions[topic_name] = width
                    changed = True
    specs = []
    for name, topic in internal.items():
        config = dict(topic.config)
        if topic.kind == "repartition":
            # Repartition records are consumed once; keep them only as long as needed.
            config.setdefault("cleanup.policy", "delete")
        specs.append(
            TopicSpec(
                topic.full_name(application_id),
                partitions.get(name, 1),
                config=config,
            )
        )
    return specs
