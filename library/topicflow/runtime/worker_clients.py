"""The Kafka clients of one stream worker: their settings, named after the worker.

A worker has a consumer (the group's member), a producer (transactional
under exactly_once_v2), a restore consumer, and, with standby replicas, a
standby consumer; each client id names the application, the worker and the
client's role, so a broker's logs and quotas tell them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.brokers.base import Admin
from topicflow.config import StreamsConfig
from topicflow.errors import StreamsException
from topicflow.runtime.transactions import transactional_id


def worker_client_configs(
    config: StreamsConfig, index: int, instance: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings of worker `index`'s consumer and producer."""
    consumer_config = config.consumer_client_config()
    consumer_config["client.id"] = f"{consumer_config['client.id']}-{index}-consumer"
    if config.group_instance_id:
        consumer_config["group.instance.id"] = f"{config.group_instance_id}-{index}"
    producer_config = config.producer_client_config()
    producer_config["client.id"] = f"{producer_config['client.id']}-{index}-producer"
    if config.exactly_once:
        producer_config["transactional.id"] = transactional_id(
            config.application_id, index, instance
        )
    return consumer_config, producer_config


def partition_counter(admin: Admin) -> Callable[[str], int]:
    """How many partitions an output topic has (the record collector partitions by it)."""

    def partition_count(topic: str) -> int:
        counts = admin.partition_counts([topic], timeout=10.0)
        if topic not in counts:
            raise StreamsException(f"output topic {topic!r} does not exist; create it first")
        return counts[topic]

    return partition_count


def restore_consumer_config(config: StreamsConfig, client_id: str) -> dict[str, Any]:
    """The settings of a consumer of changelogs: restore's, and the standbys'."""
    conf = config.base_client_config()
    conf.update(
        {
            # Never subscribed and never committing: only assign() is used. The
            # group still names one: on Heroku's basic plans every group must be
            # created beforehand (bin/heroku-setup creates this one).
            "group.id": f"{config.application_id}-restore",
            "enable.auto.commit": False,
            "client.id": client_id,
            **RESTORE_CONSUMER_CONFIG,
        }
    )
    return conf


# librdkafka settings of the restore consumer (bench/restore.py measures them).
RESTORE_CONSUMER_CONFIG: dict[str, Any] = {
    # Large fetches: restore is bulk reading.
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "queued.max.messages.kbytes": 65536,
    # librdkafka >= 2.1 waits a second before fetching again once its queue is
    # full: restore drains the queue at once, so retry soon.
    "fetch.queue.backoff.ms": 10,
    # A fetch waiting for data blocks the watermark query of the next task on the
    # same connection (librdkafka's default wait: 500 ms per task restored).
    "fetch.wait.max.ms": 10,
}
