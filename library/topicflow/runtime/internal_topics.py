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
from topicflow.errors import MissingSourceTopics, TopicflowError, TopologyError
from topicflow.topology.topology import InternalTopic, SubTopology, Topology

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
    """The internal topics with their partition counts, in Kafka Streams' order:

    1. a repartition topic gets its configured partitions, else as many as its
       upstream sub-topology's widest source topic;
    2. co-partitioned topics (a join's inputs) are checked and aligned: their
       user topics must have one partition count (else a TopologyError naming
       each), which their repartition topics then get (Kafka Streams'
       CopartitionedTopicsEnforcer);
    3. a store's changelog gets one partition per task of its sub-topology.
    """
    internal = topology.internal_topics
    partitions: dict[str, int] = {
        name: topic.partitions for name, topic in internal.items() if topic.partitions is not None
    }
    enforced = set(partitions)

    def width(sub: SubTopology) -> int | None:
        widths = [counts.get(t) or partitions.get(t) for t in sub.source_topics]
        if not widths or any(w is None for w in widths):
            return None
        return max(w for w in widths if w is not None)

    # Upstream counts may themselves be internal: resolve until nothing changes.
    changed = True
    while changed:
        changed = False
        for sub in subtopologies:
            upstream = width(sub)
            if upstream is None:
                continue
            for topic_name in sub.sink_topics:
                if topic_name in internal and topic_name not in partitions:
                    partitions[topic_name] = upstream
                    changed = True
    for group in topology.copartition_groups():
        _copartition(group, internal, partitions, enforced, counts)
    for sub in subtopologies:
        tasks = width(sub)
        if tasks is None:
            continue
        for node in sub.nodes:
            for store in getattr(node, "stores", ()):
                changelog = f"{store}-changelog"
                if changelog in internal and changelog not in partitions:
                    partitions[changelog] = tasks
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


def _copartition(
    group: list[str],
    internal: dict[str, InternalTopic],
    partitions: dict[str, int],
    enforced: set[str],
    counts: dict[str, int],
) -> None:
    """Check one co-partition group and give its repartition topics its count.

    A join reads partition N of each side in task N: with different counts, keys
    of one side would land in partitions the other side never sees.
    """
    user = {t: counts[t] for t in group if t not in internal and t in counts}
    repartition = [t for t in group if t in internal]
    if user:
        if len(set(user.values())) > 1:
            raise TopologyError(
                "topics not co-partitioned: "
                + ", ".join(f"{t} has {n} partitions" for t, n in sorted(user.items()))
                + "; a join's input topics need the same number of partitions (recreate one "
                "with the other's count, or repartition one side)"
            )
        target = next(iter(user.values()))
    else:
        fixed = {t: partitions[t] for t in repartition if t in enforced}
        if len(set(fixed.values())) > 1:
            raise TopologyError(
                "repartition topics not co-partitioned: "
                + ", ".join(f"{t} has {n} partitions" for t, n in sorted(fixed.items()))
                + " (Repartitioned.with_number_of_partitions); give them the same count"
            )
        known = [partitions[t] for t in repartition if t in partitions]
        if fixed:
            target = next(iter(fixed.values()))
        elif known:
            target = max(known)
        else:
            return
    for topic in repartition:
        if topic not in enforced:
            partitions[topic] = target
        elif partitions[topic] != target:
            raise TopologyError(
                f"repartition topic {topic} has {partitions[topic]} partitions "
                "(Repartitioned.with_number_of_partitions) but is joined with topics of "
                f"{target} partitions; a join's inputs need the same number of partitions"
            )
