"""The embedded consumer's subscription state: what it is assigned and where it reads.

As the state Kafka's consumer keeps in its SubscriptionState: per assigned
partition, the fetch position, the offset stored for the next commit and
whether it is paused; and the consumer's settings from its config. The
consumer's other parts build on it: offsets (`consumer_offsets.py`), group
membership and assignment (`consumer_coordinator.py`), then fetching
(`consumer.py`, the `EmbeddedConsumer` itself).

Paused partitions return nothing from `consume()` until `resume()`. As in
librdkafka, the pause outlives a rebalance: a paused partition revoked and
assigned back to the same consumer is still paused.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, OFFSET_END, OFFSET_INVALID
from topicflow.brokers.embedded.config import flag, number
from topicflow.brokers.embedded.group import Group, Member, TopicPartitionKey
from topicflow.brokers.embedded.log import PartitionLog
from topicflow.errors import ConfigError

if TYPE_CHECKING:
    from topicflow.brokers.embedded.broker import EmbeddedBroker

__all__ = [
    "CommitCallback",
    "RebalanceCallback",
    "SubscriptionState",
    "TopicPartitionState",
    "state_error",
]

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]
CommitCallback = Callable[[KafkaError | None, list[TopicPartition]], None]

_EARLIEST = frozenset({"earliest", "smallest", "beginning"})
_LATEST = frozenset({"latest", "largest", "end"})


class TopicPartitionState:
    """Fetch state of one assigned partition."""

    __slots__ = ("key", "log", "paused", "position", "stored")

    def __init__(self, key: TopicPartitionKey, log: PartitionLog, position: int) -> None:
        self.key = key
        self.log = log
        self.position = position  # next offset consume() returns
        self.stored = OFFSET_INVALID  # what commit() without arguments commits
        self.paused = False


class SubscriptionState:
    """The assignment, fetch positions and pauses of an `EmbeddedConsumer`."""

    def __init__(self, broker: EmbeddedBroker, config: dict[str, Any]) -> None:
        group_id = config.get("group.id")
        if not group_id:
            # confluent-kafka's own wording.
            raise ValueError("Failed to create consumer: group.id must be set")
        reset = str(config.get("auto.offset.reset", "latest")).lower()
        if reset not in _EARLIEST | _LATEST:
            raise ConfigError(
                f"auto.offset.reset={reset!r} is not supported: use earliest or latest"
            )
        self._broker = broker
        self._group_id = str(group_id)
        self._client_id = str(config.get("client.id") or "rdkafka")
        self._earliest = reset in _EARLIEST
        self._auto_commit = flag(config, "enable.auto.commit", True)
        self._auto_store = flag(config, "enable.auto.offset.store", True)
        self._auto_commit_interval = number(config, "auto.commit.interval.ms", 5000) / 1000
        self._next_auto_commit = monotonic() + self._auto_commit_interval
        self._on_commit: CommitCallback | None = config.get("on_commit")
        self._commit_results: deque[tuple[KafkaError | None, list[TopicPartition]]] = deque()
        # Woken by the broker when an assigned partition gets records or the group changes.
        self._wakeup = threading.Condition(broker._lock)
        self._group: Group | None = None
        self._member: Member | None = None
        self._on_assign: RebalanceCallback | None = None
        self._on_revoke: RebalanceCallback | None = None
        self._on_lost: RebalanceCallback | None = None
        self._assigned: list[TopicPartitionKey] = []
        self._fetches: list[TopicPartitionState] = []
        self._fetch_by_key: dict[TopicPartitionKey, TopicPartitionState] = {}
        self._active: list[TopicPartitionState] = []  # the fetches not paused
        self._paused_keys: set[tuple[str, int]] = set()  # kept across rebalances
        self._manual = False  # partitions assigned with assign(), outside the group
        self._cursor = 0  # rotates the partition served first, for fairness
        self._in_callback = ""  # "assign"/"revoke" while that callback runs
        self._assign_offsets: dict[TopicPartitionKey, int] | None = None
        self._closed = False

    def assignment(self) -> list[TopicPartition]:
        """The partitions assigned: by the group, or by assign()."""
        self._check_open()
        return [TopicPartition(t, p) for t, p in self._assigned]

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop returning records of these partitions until resume(); the member stays.

        Partitions not assigned are ignored, as librdkafka's per-partition
        errors are by confluent-kafka.
        """
        self._set_paused(partitions, True)

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Return records of these partitions again, from where consume() left off."""
        self._set_paused(partitions, False)

    def _set_paused(self, partitions: list[TopicPartition], paused: bool) -> None:
        self._check_open()
        if not isinstance(partitions, list):
            raise TypeError("expected a list of TopicPartition")
        with self._broker._lock:
            by_key = self._fetch_by_key
            for tp in partitions:
                key = (tp.topic, tp.partition)
                if not paused:
                    # Also a partition being assigned back (inside on_assign, before
                    # its fetch exists): librdkafka clears the pause of a partition
                    # it knows, assigned or not.
                    self._paused_keys.discard(key)
                fetch = by_key.get(key)
                if fetch is not None:
                    fetch.paused = paused
                    if paused:
                        self._paused_keys.add(key)
            self._active = [f for f in self._fetches if not f.paused]
            # A consume() blocked in another thread waits for the old set.
            self._wakeup.notify_all()

    def _set_fetches_locked(self, fetches: list[TopicPartitionState]) -> None:
        self._fetches = fetches
        self._fetch_by_key = {f.key: f for f in fetches}
        for fetch in fetches:
            fetch.paused = fetch.key in self._paused_keys
        self._active = [f for f in fetches if not f.paused]

    def _resolve(self, offset: int, log: PartitionLog) -> int:
        """A start position: offset, or a logical one, or auto.offset.reset."""
        start, end = log.start, log.end
        if offset == OFFSET_BEGINNING:
            return start
        if offset == OFFSET_END:
            return end
        if start <= offset <= end:
            return offset
        return start if self._earliest else end  # none, or out of range: auto.offset.reset

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The next offset consume() returns for each partition (OFFSET_INVALID if unassigned)."""
        self._check_open()
        with self._broker._lock:
            out = []
            for tp in partitions:
                fetch = self._fetch_by_key.get((tp.topic, tp.partition))
                offset = fetch.position if fetch is not None else OFFSET_INVALID
                out.append(TopicPartition(tp.topic, tp.partition, offset))
            return out

    def seek(self, partition: TopicPartition) -> None:
        """Move the fetch position of an assigned partition."""
        self._check_open()
        with self._broker._lock:
            fetch = self._fetch_by_key.get((partition.topic, partition.partition))
            if fetch is None:
                raise KafkaException(
                    KafkaError(
                        KafkaError._UNKNOWN_PARTITION,
                        f"{partition.topic}[{partition.partition}] is not assigned",
                    )
                )
            fetch.position = self._resolve(partition.offset, fetch.log)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Consumer closed")


def state_error(reason: str) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._STATE, reason))
