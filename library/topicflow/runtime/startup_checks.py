"""What `KafkaStreams.start()` checks before any worker runs, for a clear error now.

Each check fails in one line, at start, where the application could not work
or would fail later and less clearly: exactly-once without transactions, a
flush stamp with two input topics, cooperative rebalancing of co-partitioned
topics.
"""

from __future__ import annotations

from typing import cast

from topicflow.brokers.base import Broker, TransactionalProducer
from topicflow.config import StreamsConfig
from topicflow.errors import BrokerUnavailable, ConfigError
from topicflow.state.stores import StoreSpec
from topicflow.topology.topology import SubTopology

__all__ = ["check_assignment_strategy", "check_idempotent_state", "check_transactions"]


def check_assignment_strategy(config: StreamsConfig, subtopologies: list[SubTopology]) -> None:
    if config.partition_assignment_strategy != "cooperative-sticky":
        return
    for sub in subtopologies:
        if len(sub.source_topics) > 1:
            raise ConfigError(
                "partition_assignment_strategy='cooperative-sticky' places each partition "
                f"on its own, but sub-topology {sub.id} reads {', '.join(sub.source_topics)} "
                "whose partitions must stay together in one task: use 'range'"
            )


def check_idempotent_state(
    config: StreamsConfig, subtopologies: list[SubTopology], stores: dict[str, StoreSpec]
) -> None:
    """A flush stamp is one input position: a stateful task must read one topic; and
    every store must be one a replay leaves exact."""
    if not config.stamps_replays:
        return
    for sub in subtopologies:
        names = [store for node in sub.nodes for store in getattr(node, "stores", ())]
        unsafe = sorted({n for n in names if n in stores and not stores[n].replay_safe})
        if unsafe:
            raise ConfigError(
                f"idempotent_state: sub-topology {sub.id} keeps {', '.join(unsafe)}, which "
                "a replay after a crash would not leave exact (a stream-stream join's "
                "windows, a suppression buffer); use exactly_once_v2, or at_least_once "
                "without idempotent_state"
            )
        stateful = bool(names)
        if stateful and len(sub.source_topics) > 1:
            raise ConfigError(
                f"idempotent_state: sub-topology {sub.id} keeps state and reads "
                f"{', '.join(sub.source_topics)}; idempotent state needs stateful "
                "sub-topologies that read one topic (or use exactly_once_v2)"
            )


def check_transactions(config: StreamsConfig, broker: Broker) -> None:
    """Fail at start, in one line, where exactly-once cannot work."""
    if broker.name == "embedded":
        raise ConfigError(
            "processing_guarantee='exactly_once_v2' needs Apache Kafka's transactions; "
            "the embedded broker has none: set KAFKA_URL or use 'at_least_once'"
        )
    from confluent_kafka import KafkaException

    from topicflow.runtime.transactions import TRANSACTION_TIMEOUT_S, refused_transactions

    producer_config = config.producer_client_config()
    producer_config["transactional.id"] = f"{config.application_id}-startup-check"
    producer = cast(TransactionalProducer, broker.producer(producer_config))
    try:
        producer.init_transactions(min(TRANSACTION_TIMEOUT_S, config.startup_timeout_ms / 1000))
    except KafkaException as error:
        refused = refused_transactions(error)
        if refused is not None:
            raise refused from None
        raise BrokerUnavailable(f"cannot start Kafka transactions: {error}") from None
