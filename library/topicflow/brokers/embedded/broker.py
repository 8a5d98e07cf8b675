"""The embedded broker: topics and consumer groups held in memory, in this process.

One lock guards every topic log and group; the condition built on it wakes
consumers blocked in `consume()` when records arrive or their group changes.
Memory stays bounded as in Kafka: each topic's cleanup.policy (delete: retention
by record count and age; compact: the latest record per key) applies as its
partitions roll segments (see `log.py`).
Clients (`EmbeddedProducer`, `EmbeddedConsumer`) imitate confluent-kafka's so
the stream worker runs unchanged on this broker and on Apache Kafka.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Sequence
from typing import Any

from topicflow.brokers.base import GroupMember, Headers, TopicSpec
from topicflow.brokers.embedded.config import LogConfig
from topicflow.brokers.embedded.consumer import EmbeddedConsumer
from topicflow.brokers.embedded.group import Group
from topicflow.brokers.embedded.log import PartitionLog, messages
from topicflow.brokers.embedded.producer import EmbeddedProducer
from topicflow.errors import ConfigError

__all__ = ["EmbeddedAdmin", "EmbeddedBroker", "default_broker"]

# Kafka's rule for topic names.
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class EmbeddedBroker:
    """An in-process stand-in for a Kafka cluster, shared by all threads of the process.

    Its topic methods take the `Admin` signatures (the timeout is moot in-process).

    Each topic is a list of `PartitionLog`s. Producing to a missing topic creates it
    with `default_partitions` partitions, like a development broker with
    `auto.create.topics.enable=true`.

    Broker-wide defaults of the topic configs (a topic's `TopicSpec.config`
    overrides them): with the delete policy, the default, a partition keeps at
    least `retention_records` records and at most a tenth more (None:
    unlimited), and drops segments whose records are all older than
    `retention_ms` (None: never). `segment_records` and `min_compaction_records`
    tune how often retention and compaction run (see `LogConfig`).
    """

    name = "embedded"

    def __init__(
        self,
        default_partitions: int = 4,
        *,
        retention_records: int | None = 1_000_000,
        retention_ms: int | None = None,
        segment_records: int = 10_000,
        min_compaction_records: int = 10_000,
    ) -> None:
        if default_partitions < 1:
            raise ValueError(f"default_partitions must be >= 1, not {default_partitions}")
        self.default_partitions = default_partitions
        # The broker-wide defaults, and what a topic without configs gets.
        self._log_defaults = LogConfig(
            retention_records=retention_records,
            retention_ms=retention_ms,
            segment_records=segment_records,
            min_compaction_records=min_compaction_records,
        )
        self._log_config = self._log_defaults.for_topic("", None)
        self._lock = threading.Lock()
        # Consumers blocked in consume(), each on its own condition (over `_lock`),
        # indexed by the partitions they wait for: a record wakes only the consumer
        # that owns its partition. `_waiters` lets produce() skip all this cheaply.
        self._waiting: dict[threading.Condition, list[tuple[str, int]]] = {}
        self._waiting_on: dict[tuple[str, int], list[threading.Condition]] = {}
        self._waiters = 0
        self._topics: dict[str, list[PartitionLog]] = {}
        self._groups: dict[str, Group] = {}
        self._member_numbers = itertools.count(1)

    # -- Broker protocol -------------------------------------------------------------------

    def consumer(self, client_config: dict[str, Any]) -> EmbeddedConsumer:
        return EmbeddedConsumer(self, client_config)

    def producer(self, client_config: dict[str, Any]) -> EmbeddedProducer:
        return EmbeddedProducer(self, client_config)

    def admin(self) -> EmbeddedAdmin:
        return EmbeddedAdmin(self)

    def check_reachable(self, timeout: float) -> None:
        """Always reachable: it lives in this process."""

    # -- topics ----------------------------------------------------------------------------

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float = -1) -> None:
        """Create topics; existing ones are left as they are (partitions and configs)."""
        configs = []
        for spec in specs:
            _check_topic_name(spec.name)
            if spec.partitions < 1:
                raise ConfigError(f"topic {spec.name!r}: partitions must be >= 1")
            configs.append(self._log_defaults.for_topic(spec.name, spec.config))
        with self._lock:
            for spec, config in zip(specs, configs, strict=True):
                if spec.name not in self._topics:
                    self._create_locked(spec.name, spec.partitions, config)

    def delete_topics(self, topics: Sequence[str], timeout: float = -1) -> None:
        """Delete topics with their records and committed offsets; missing ones are ignored."""
        with self._lock:
            for topic in topics:
                parts = self._topics.pop(topic, None)
                if parts is None:
                    continue
                # Emptied rather than just dropped: consumers still holding a log
                # until their group rebalances then see nothing, and memory is freed.
                for log in parts:
                    log.clear()
                for group in self._groups.values():
                    group.forget_topic(topic)
                    if group.subscribes_to(topic):
                        group.rebalance(self._topics)
            self._wake_all_locked()

    def partition_counts(self, topics: Sequence[str], timeout: float = -1) -> dict[str, int]:
        """Partition count of each named topic that exists."""
        with self._lock:
            return {t: len(self._topics[t]) for t in topics if t in self._topics}

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._topics)

    # -- inspection, for tests and the demo ------------------------------------------------

    def read_all(
        self, topic: str
    ) -> list[tuple[int, int, bytes | None, bytes | None, int, Headers | None]]:
        """Each retained record of `topic`: (partition, offset, key, value, timestamp, headers)."""
        with self._lock:
            chunks = [
                (p, chunk)
                for p, log in enumerate(self._topics.get(topic, ()))
                for chunk in log.chunks()
            ]
        return [
            (p, m._offset, m._key, m._value, m._timestamp, m._headers)
            for p, chunk in chunks
            for m in messages(topic, p, chunk)
        ]

    def end_offsets(self, topic: str) -> list[int]:
        """The next offset of each partition of `topic` (empty when it does not exist)."""
        with self._lock:
            return [log.end for log in self._topics.get(topic, ())]

    def start_offsets(self, topic: str) -> list[int]:
        """The log start offset (low watermark) of each partition of `topic`."""
        with self._lock:
            return [log.start for log in self._topics.get(topic, ())]

    def retained(self, topic: str) -> list[int]:
        """How many records each partition of `topic` holds now."""
        with self._lock:
            return [log.records for log in self._topics.get(topic, ())]

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """The committed offsets of a consumer group, by (topic, partition)."""
        with self._lock:
            group = self._groups.get(group_id)
            return dict(group.committed) if group is not None else {}

    # -- for the clients (lock held unless said otherwise) ---------------------------------

    def _auto_create(self, topic: str) -> list[PartitionLog] | None:
        """The topic's partitions, creating it if needed; None if its name is illegal.

        Takes the lock itself.
        """
        if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
            return None
        with self._lock:
            parts = self._topics.get(topic)
            if parts is None:
                parts = self._create_locked(topic, self.default_partitions, self._log_config)
            return parts

    def _create_locked(self, topic: str, partitions: int, config: LogConfig) -> list[PartitionLog]:
        parts = [PartitionLog(config) for _ in range(partitions)]
        self._topics[topic] = parts
        for group in self._groups.values():
            if group.subscribes_to(topic):
                group.rebalance(self._topics)
        self._wake_all_locked()
        return parts

    def _wait_locked(
        self, wakeup: threading.Condition, keys: list[tuple[str, int]], timeout: float | None
    ) -> None:
        """Block a consumer until a record arrives in `keys`, its group changes, or timeout."""
        self._waiting[wakeup] = keys
        for key in keys:
            self._waiting_on.setdefault(key, []).append(wakeup)
        self._waiters += 1
        try:
            wakeup.wait(timeout)
        finally:
            self._waiters -= 1
            del self._waiting[wakeup]
            for key in keys:
                conditions = self._waiting_on[key]
                conditions.remove(wakeup)
                if not conditions:
                    del self._waiting_on[key]

    def _wake_locked(self, key: tuple[str, int]) -> None:
        """Wake the consumers waiting for records of partition `key`."""
        for wakeup in self._waiting_on.get(key, ()):
            wakeup.notify()

    def _wake_all_locked(self) -> None:
        """Wake every waiting consumer: group membership or topics changed."""
        for wakeup in self._waiting:
            wakeup.notify()

    def _group_locked(self, group_id: str) -> Group:
        group = self._groups.get(group_id)
        if group is None:
            group = self._groups[group_id] = Group(group_id)
        return group

    def _new_member_id_locked(self, client_id: str) -> str:
        # Kafka appends a UUID; a counter keeps the range assignor's order (by member
        # id) the join order, which makes assignments predictable.
        return f"{client_id}-{next(self._member_numbers):08d}"


class EmbeddedAdmin:
    """The `Admin` of an `EmbeddedBroker`; timeouts are moot in-process."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker

    def partition_counts(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        return self._broker.partition_counts(topics)

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float) -> None:
        self._broker.create_topics(specs)

    def delete_topics(self, topics: Sequence[str], timeout: float) -> None:
        self._broker.delete_topics(topics)

    def max_message_bytes(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        return {}  # the embedded broker takes records of any size

    def group_members(self, group_id: str, timeout: float) -> list[GroupMember] | None:
        broker = self._broker
        with broker._lock:
            group = broker._groups.get(group_id)
            if group is None:
                return []
            if not group.stable or group.pending:
                return None
            return [
                GroupMember(member.member_id, "embedded", tuple(sorted(member.owned)))
                for member in group.members.values()
            ]


def _check_topic_name(topic: str) -> None:
    if not _TOPIC_NAME.fullmatch(topic) or topic in (".", ".."):
        raise ConfigError(
            f"illegal topic name {topic!r}: use 1 to 249 of the characters a-z A-Z 0-9 . _ -"
        )


_default: EmbeddedBroker | None = None
_default_lock = threading.Lock()


def default_broker() -> EmbeddedBroker:
    """The process-wide embedded broker, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EmbeddedBroker()
        return _default
