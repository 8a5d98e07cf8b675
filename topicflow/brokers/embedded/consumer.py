"""The embedded broker's consumer, imitating confluent-kafka's `Consumer` in a group.

Group membership follows the eager protocol with the range assignor (see
`group.py`). As with librdkafka, a member learns of a rebalance inside its own
`consume()`: `on_revoke` then `on_assign` run there, on the member's thread,
and never with the broker's lock held, so callbacks may commit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
)
from topicflow.brokers.embedded.config import flag, number
from topicflow.brokers.embedded.group import Group, Member, TopicPartitionKey
from topicflow.brokers.embedded.log import Chunk, PartitionLog, messages
from topicflow.errors import ConfigError

if TYPE_CHECKING:
    from topicflow.brokers.embedded.broker import EmbeddedBroker

__all__ = ["EmbeddedConsumer"]

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]
CommitCallback = Callable[[KafkaError | None, list[TopicPartition]], None]

_EARLIEST = frozenset({"earliest", "smallest", "beginning"})
_LATEST = frozenset({"latest", "largest", "end"})


class _Fetch:
    """Fetch state of one assigned partition."""

    __slots__ = ("key", "log", "position", "stored")

    def __init__(self, key: TopicPartitionKey, log: PartitionLog, position: int) -> None:
        self.key = key
        self.log = log
        self.position = position  # next offset consume() returns
        self.stored = OFFSET_INVALID  # what commit() without arguments commits


class EmbeddedConsumer:
    """A consumer-group member of an `EmbeddedBroker`; see confluent_kafka.Consumer."""

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
        self._fetches: list[_Fetch] = []
        self._fetch_by_key: dict[TopicPartitionKey, _Fetch] = {}
        self._cursor = 0  # rotates the partition served first, for fairness
        self._in_callback = ""  # "assign"/"revoke" while that callback runs
        self._assign_offsets: dict[TopicPartitionKey, int] | None = None
        self._closed = False

    # -- membership ------------------------------------------------------------------------

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group (or change the subscription); the others rebalance."""
        self._check_open()
        if isinstance(topics, str) or not all(isinstance(t, str) for t in topics):
            raise TypeError("subscribe() expects a list of topic names")
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        broker = self._broker
        with broker._lock:
            if self._member is None:
                group = broker._group_locked(self._group_id)
                member = Member(broker._new_member_id_locked(self._client_id), topics)
                self._group, self._member = group, member
                group.join(member, broker._topics)
            elif self._group is not None and tuple(topics) != self._member.topics:
                self._member.topics = tuple(topics)
                self._group.rebalance(broker._topics)
            else:
                return
            broker._wake_all_locked()

    def unsubscribe(self) -> None:
        """Leave the group, revoking what this member owns."""
        self._check_open()
        if self._member is not None:
            self._revoke(leaving=True)

    def close(self) -> None:
        """Revoke (calling on_revoke) and leave the group; idempotent, as confluent's."""
        if self._closed:
            return
        try:
            if self._member is not None:
                self._revoke(leaving=True)
        finally:
            self._closed = True
            with self._broker._lock:
                # A consume() blocked in another thread must see the close.
                self._broker._wake_all_locked()

    def __enter__(self) -> EmbeddedConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def memberid(self) -> str | None:
        return self._member.member_id if self._member is not None else None

    def assignment(self) -> list[TopicPartition]:
        self._check_open()
        return [TopicPartition(t, p) for t, p in self._assigned]

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Only inside on_assign: start the assigned partitions at these offsets."""
        if self._in_callback != "assign":
            raise KafkaException(
                KafkaError(
                    KafkaError._NOT_IMPLEMENTED,
                    "embedded broker: assign() is only supported inside on_assign",
                )
            )
        self._assign_offsets = {(tp.topic, tp.partition): tp.offset for tp in partitions}

    def unassign(self) -> None:
        """Only inside on_revoke, where it is what happens anyway."""
        if self._in_callback != "revoke":
            raise KafkaException(
                KafkaError(
                    KafkaError._NOT_IMPLEMENTED,
                    "embedded broker: unassign() is only supported inside on_revoke",
                )
            )

    # -- consuming -------------------------------------------------------------------------

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        """Up to `num_messages` records, fairly across assigned partitions.

        Waits up to `timeout` seconds (-1: forever) for at least one; runs this
        member's rebalance callbacks first when its group has changed.
        """
        self._check_open()
        if not 0 <= num_messages <= 1_000_000:
            raise ValueError("num_messages must be between 0 and 1000000 (1M)")
        if self._commit_results:
            self._serve_commit_results()
        deadline = None if timeout is None or timeout < 0 else monotonic() + timeout
        broker = self._broker
        while True:
            revoke = False
            assigned: list[TopicPartitionKey] | None = None
            chunks: list[tuple[str, int, int, Chunk]] = []
            with broker._lock:
                member, group = self._member, self._group
                if member is not None and group is not None:
                    revoke = group.must_revoke(member)
                    if not revoke:
                        assigned = group.take_assignment(member)
                if not revoke and assigned is None:
                    if self._fetches and num_messages:
                        chunks = self._fetch_locked(num_messages)
                    if self._auto_commit:
                        self._auto_commit_locked()
                    if not chunks:
                        remaining = None if deadline is None else deadline - monotonic()
                        if remaining is not None and remaining <= 0:
                            return []
                        keys = [f.key for f in self._fetches]
                        broker._wait_locked(self._wakeup, keys, remaining)
                        if self._closed:
                            raise RuntimeError("Consumer closed")
                        continue
            if chunks:
                # Messages are built without the lock: producers need not wait for it.
                out: list[Any] = []
                for topic, partition, start, chunk in chunks:
                    out += messages(topic, partition, start, chunk)
                return out
            # The rebalance callbacks run without the lock too, on this thread.
            if revoke:
                self._revoke(leaving=False)
            elif assigned is not None:
                self._take(assigned)

    def poll(self, timeout: float = -1) -> Any:
        """One record or None, like confluent's poll()."""
        messages = self.consume(1, timeout)
        return messages[0] if messages else None

    def _fetch_locked(self, limit: int) -> list[tuple[str, int, int, Chunk]]:
        """Take up to `limit` records: (topic, partition, first offset, records) per partition."""
        fetches = self._fetches
        count = len(fetches)
        start = self._cursor % count
        self._cursor = start + 1
        auto_store = self._auto_store
        chunks: list[tuple[str, int, int, Chunk]] = []
        remaining = limit
        # Each partition with records gets an equal share; what some leave unused
        # goes round again to those that have more.
        share = max(1, limit // count)
        while True:
            more = 0
            for i in range(count):
                f = fetches[(start + i) % count]
                position = f.position
                available = len(f.log) - position
                if available <= 0:
                    continue
                take = min(available, share, remaining)
                end = position + take
                chunks.append((f.key[0], f.key[1], position, f.log.slice(position, end)))
                f.position = end
                if auto_store:
                    f.stored = end
                remaining -= take
                if not remaining:
                    return chunks
                if available > take:
                    more += 1
            if not more:
                return chunks
            share = max(1, remaining // more)

    # -- rebalance -------------------------------------------------------------------------

    def _revoke(self, leaving: bool) -> None:
        """Run on_revoke for what this member owns, then give it up (and maybe leave)."""
        broker = self._broker
        member, group = self._member, self._group
        assert member is not None and group is not None
        with broker._lock:
            owned = sorted(member.owned)
        self._in_callback = "revoke"
        try:
            if owned and self._on_revoke is not None:
                self._on_revoke(self, [TopicPartition(t, p) for t, p in owned])
        finally:
            self._in_callback = ""
            with broker._lock:
                # As librdkafka: auto-commit what was consumed before the partitions go.
                if self._auto_commit:
                    self._commit_locked(None)
                self._assigned, self._fetches, self._fetch_by_key = [], [], {}
                if leaving:
                    group.leave(member, broker._topics)
                    self._member = self._group = None
                else:
                    group.revoked(member, broker._topics)
                broker._wake_all_locked()

    def _take(self, assigned: list[TopicPartitionKey]) -> None:
        """Run on_assign for a new assignment, then start fetching it."""
        self._in_callback = "assign"
        self._assign_offsets = None
        try:
            if self._on_assign is not None:
                self._on_assign(self, [TopicPartition(t, p) for t, p in assigned])
        finally:
            self._in_callback = ""
            overrides: dict[TopicPartitionKey, int] = self._assign_offsets or {}
            self._assign_offsets = None
            with self._broker._lock:
                if self._member is not None:
                    self._start_locked(assigned, overrides)

    def _start_locked(
        self, assigned: list[TopicPartitionKey], overrides: dict[TopicPartitionKey, int]
    ) -> None:
        """Fetch positions: an offset given to assign(), else the committed one, else the reset."""
        assert self._group is not None
        committed = self._group.committed
        topics = self._broker._topics
        fetches = []
        for key in assigned:
            parts = topics.get(key[0])
            if parts is None or key[1] >= len(parts):
                continue  # deleted meanwhile: a rebalance is on its way
            log = parts[key[1]]
            offset = overrides.get(key, OFFSET_INVALID)
            if offset in (OFFSET_INVALID, OFFSET_STORED):
                offset = committed.get(key, OFFSET_INVALID)
            fetches.append(_Fetch(key, log, self._resolve(offset, len(log))))
        self._assigned = list(assigned)
        self._fetches = fetches
        self._fetch_by_key = {f.key: f for f in fetches}

    def _resolve(self, offset: int, end: int) -> int:
        if offset == OFFSET_BEGINNING:
            return 0
        if offset == OFFSET_END:
            return end
        if 0 <= offset <= end:
            return offset
        return 0 if self._earliest else end  # none, or out of range: auto.offset.reset

    # -- offsets ---------------------------------------------------------------------------

    def commit(
        self,
        message: Any = None,
        offsets: list[TopicPartition] | None = None,
        asynchronous: bool = True,
    ) -> list[TopicPartition] | None:
        """Commit the next offsets to read: given, after `message`, or the stored ones.

        A synchronous commit raises KafkaException on failure (e.g. a partition this
        member does not own); an asynchronous one reports to the `on_commit`
        config callback, from the next consume(), as librdkafka does.
        """
        self._check_open()
        entries: list[tuple[str, int, int]] | None = None
        if message is not None and offsets is not None:
            raise ValueError("commit() takes message or offsets, not both")
        if message is not None:
            entries = [(message.topic(), message.partition(), message.offset() + 1)]
        elif offsets is not None:
            entries = [(tp.topic, tp.partition, tp.offset) for tp in offsets]
        with self._broker._lock:
            error, done = self._commit_locked(entries)
        result = [TopicPartition(t, p, o) for t, p, o in done]
        if asynchronous:
            if self._on_commit is not None:
                self._commit_results.append((error, result))
            return None
        if error is not None:
            raise KafkaException(error)
        return result

    def _commit_locked(
        self, entries: list[tuple[str, int, int]] | None
    ) -> tuple[KafkaError | None, list[tuple[str, int, int]]]:
        member, group = self._member, self._group
        if entries is None:
            committed = group.committed if group is not None else {}
            entries = [
                (f.key[0], f.key[1], f.stored)
                for f in self._fetches
                if f.stored >= 0 and committed.get(f.key) != f.stored
            ]
        else:
            entries = [e for e in entries if e[2] >= 0]  # logical offsets are not committed
        if not entries:
            return KafkaError(KafkaError._NO_OFFSET), []
        if member is None or group is None:
            return KafkaError(KafkaError.UNKNOWN_MEMBER_ID, "not a member of the group"), []
        for topic, partition, _ in entries:
            if (topic, partition) not in member.owned:
                reason = (
                    f"{topic}[{partition}] is not assigned to this member "
                    f"(group {group.group_id!r}, generation {group.generation})"
                )
                return KafkaError(KafkaError.ILLEGAL_GENERATION, reason), []
        for topic, partition, offset in entries:
            group.committed[(topic, partition)] = offset
        return None, entries

    def _auto_commit_locked(self) -> None:
        now = monotonic()
        if now >= self._next_auto_commit:
            self._next_auto_commit = now + self._auto_commit_interval
            self._commit_locked(None)

    def _serve_commit_results(self) -> None:
        callback = self._on_commit
        while self._commit_results:
            error, partitions = self._commit_results.popleft()
            if callback is not None:
                callback(error, partitions)

    def store_offsets(
        self, message: Any = None, offsets: list[TopicPartition] | None = None
    ) -> None:
        """Set what commit() without arguments (and auto-commit) will commit."""
        self._check_open()
        if message is not None:
            entries = [(message.topic(), message.partition(), message.offset() + 1)]
        else:
            entries = [(tp.topic, tp.partition, tp.offset) for tp in offsets or ()]
        with self._broker._lock:
            fetches = [self._fetch_by_key.get((t, p)) for t, p, _ in entries]
            for (topic, partition, _), fetch in zip(entries, fetches, strict=True):
                if fetch is None:
                    raise KafkaException(
                        KafkaError(KafkaError._STATE, f"{topic}[{partition}] is not assigned")
                    )
            for (_, _, offset), fetch in zip(entries, fetches, strict=True):
                assert fetch is not None
                fetch.stored = offset

    def committed(
        self, partitions: list[TopicPartition], timeout: float = -1
    ) -> list[TopicPartition]:
        """The group's committed offsets (OFFSET_INVALID where none)."""
        self._check_open()
        broker = self._broker
        with broker._lock:
            group = broker._groups.get(self._group_id)
            committed = dict(group.committed) if group is not None else {}
        return [
            TopicPartition(
                tp.topic, tp.partition, committed.get((tp.topic, tp.partition), OFFSET_INVALID)
            )
            for tp in partitions
        ]

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
            fetch.position = self._resolve(partition.offset, len(fetch.log))

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high): 0 (nothing is ever deleted) and the next offset to be written."""
        self._check_open()
        broker = self._broker
        with broker._lock:
            parts = broker._topics.get(partition.topic)
            if parts is None or not 0 <= partition.partition < len(parts):
                raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
            return 0, len(parts[partition.partition])

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Consumer closed")
