"""The one interface the runtime sees for a broker.

It is the subset of confluent-kafka's `Consumer`, `Producer` and `AdminClient`
that a stream worker needs, spelled the same way, so the Kafka backend passes
librdkafka's objects through untouched (no wrapper on the per-record path) and
the embedded broker imitates them.

A consumed message is anything with confluent-kafka's `Message` accessors:
`topic()`, `partition()`, `offset()`, `key()`, `value()`, `timestamp()`,
`headers()` and `error()`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Headers = list[tuple[str, bytes | None]]

# Timestamp types as in confluent-kafka (`TIMESTAMP_CREATE_TIME` etc.).
TIMESTAMP_NOT_AVAILABLE = 0
TIMESTAMP_CREATE_TIME = 1
TIMESTAMP_LOG_APPEND_TIME = 2

# Special offsets, as librdkafka numbers them.
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000
OFFSET_INVALID = -1001


class Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...
    def headers(self) -> Headers | None: ...
    def error(self) -> Any: ...


class TopicPartitionLike(Protocol):
    """confluent_kafka.TopicPartition or the embedded broker's equivalent."""

    topic: str
    partition: int
    offset: int


RebalanceCallback = Callable[[Any, list[Any]], None]


class Consumer(Protocol):
    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = ...,
        on_revoke: RebalanceCallback | None = ...,
        on_lost: RebalanceCallback | None = ...,
    ) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def commit(
        self, message: Any = ..., offsets: list[Any] | None = ..., asynchronous: bool = ...
    ) -> Any: ...
    def committed(self, partitions: list[Any], timeout: float = ...) -> list[Any]: ...
    def assignment(self) -> list[Any]: ...
    def pause(self, partitions: list[Any]) -> None: ...
    def resume(self, partitions: list[Any]) -> None: ...
    def assign(self, partitions: list[Any]) -> None:
        """Read these partitions from the given offsets, outside any group (restore)."""
        ...

    def unassign(self) -> None: ...
    def seek(self, partition: Any) -> None: ...
    def position(self, partitions: list[Any]) -> list[Any]: ...
    def consumer_group_metadata(self) -> Any: ...
    def memberid(self) -> str | None: ...
    def get_watermark_offsets(
        self, partition: Any, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int]: ...
    def close(self) -> None: ...


class Producer(Protocol):
    def produce(
        self,
        topic: str,
        value: bytes | None = ...,
        key: bytes | None = ...,
        partition: int = ...,
        on_delivery: Callable[[Any, Any], None] | None = ...,
        callback: Callable[[Any, Any], None] | None = ...,
        timestamp: int = ...,
        headers: Headers | None = ...,
    ) -> None:
        """confluent-kafka's order, which the sinks pass positionally."""

    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def __len__(self) -> int: ...


class TransactionalProducer(Producer, Protocol):
    """A producer with transactions (exactly-once): Apache Kafka's, not the embedded one."""

    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[Any], group_metadata: Any, timeout: float = ...
    ) -> None: ...
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: name, partitions, and topic-level configs."""

    name: str
    partitions: int
    replication_factor: int = -1  # -1: the broker's default
    config: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of a consumer group, as its coordinator describes it."""

    member_id: str
    host: str  # where the member connects from: one per machine (dyno)
    partitions: tuple[tuple[str, int], ...]


class Admin(Protocol):
    """Topic and group administration, reduced to what topicflow needs."""

    def partition_counts(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        """Partition count of each named topic that exists; missing topics are absent."""
        ...

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float) -> None:
        """Create topics; topics that already exist are left as they are."""
        ...

    def delete_topics(self, topics: Sequence[str], timeout: float) -> None: ...

    def max_message_bytes(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        """Each named topic's largest record batch (max.message.bytes), where known."""
        ...

    def group_members(self, group_id: str, timeout: float) -> list[GroupMember] | None:
        """The members of a stable group with their partitions; None while it rebalances."""
        ...


class Broker(Protocol):
    """A factory for one backend's clients: Apache Kafka or the embedded broker.

    `client_config` uses librdkafka's property names (`group.id`,
    `enable.auto.commit`, ...); the embedded broker reads the few it understands
    and ignores the rest.
    """

    name: str

    def consumer(self, client_config: dict[str, Any]) -> Consumer: ...
    def producer(self, client_config: dict[str, Any]) -> Producer: ...
    def admin(self) -> Admin: ...
    def check_reachable(self, timeout: float) -> None:
        """Raise BrokerUnavailable with one clear line when the broker cannot be reached."""
        ...
