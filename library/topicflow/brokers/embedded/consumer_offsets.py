"""The embedded consumer's offsets: commits, stored offsets, committed offsets, watermarks.

A commit is synchronous (raising KafkaException on failure, e.g. a partition
this member does not own) or asynchronous (reported to the `on_commit` config
callback from the next `consume()`, as librdkafka does). Auto-commit commits
the stored offsets every auto.commit.interval.ms, from `consume()`, and before
partitions are revoked or unassigned.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import OFFSET_INVALID
from topicflow.brokers.embedded.subscription_state import SubscriptionState

__all__ = ["ConsumerOffsets"]


class ConsumerOffsets(SubscriptionState):
    """Committing and reading offsets, on top of the subscription state."""

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
        metadata: dict[tuple[str, int], str] = {}
        if message is not None and offsets is not None:
            raise ValueError("commit() takes message or offsets, not both")
        if message is not None:
            entries = [(message.topic(), message.partition(), message.offset() + 1)]
        elif offsets is not None:
            entries = [(tp.topic, tp.partition, tp.offset) for tp in offsets]
            metadata = {(tp.topic, tp.partition): tp.metadata for tp in offsets if tp.metadata}
        with self._broker._lock:
            error, done = self._commit_locked(entries, metadata)
        result = [TopicPartition(t, p, o) for t, p, o in done]
        if asynchronous:
            if self._on_commit is not None:
                self._commit_results.append((error, result))
            return None
        if error is not None:
            raise KafkaException(error)
        return result

    def _commit_locked(
        self,
        entries: list[tuple[str, int, int]] | None,
        metadata: dict[tuple[str, int], str] | None = None,
    ) -> tuple[KafkaError | None, list[tuple[str, int, int]]]:
        member, group = self._member, self._group
        if group is None:
            group = self._broker._groups.get(self._group_id)
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
        if member is None:
            # As Kafka's coordinator: a consumer outside the group (assign()) may
            # commit for it only while the group has no members.
            if group is not None and group.members:
                reason = f"not a member of group {self._group_id!r}, which has members"
                return KafkaError(KafkaError.UNKNOWN_MEMBER_ID, reason), []
            group = self._broker._group_locked(self._group_id)
            group.commit(entries, metadata or {})
            return None, entries
        assert group is not None
        for topic, partition, _ in entries:
            if (topic, partition) not in member.owned:
                reason = (
                    f"{topic}[{partition}] is not assigned to this member "
                    f"(group {group.group_id!r}, generation {group.generation})"
                )
                return KafkaError(KafkaError.ILLEGAL_GENERATION, reason), []
        group.commit(entries, metadata or {})
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
            metadata = dict(group.committed_metadata) if group is not None else {}
        out = []
        for tp in partitions:
            key = (tp.topic, tp.partition)
            offset = committed.get(key, OFFSET_INVALID)
            given = metadata.get(key)
            out.append(
                TopicPartition(tp.topic, tp.partition, offset)
                if given is None
                else TopicPartition(tp.topic, tp.partition, offset, given)
            )
        return out

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = -1, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high): the log start offset and the offset the next record gets.

        As confluent-kafka: an unknown topic or partition raises KafkaException
        (UNKNOWN_TOPIC_OR_PART; with `cached`, _UNKNOWN_PARTITION), and `cached`
        answers (OFFSET_INVALID, OFFSET_INVALID) for a partition this consumer
        does not fetch (librdkafka has no cached watermarks for it).
        """
        self._check_open()
        broker = self._broker
        topic, number = partition.topic, partition.partition
        with broker._lock:
            parts = broker._topics.get(topic)
            if parts is None or not 0 <= number < len(parts):
                code = KafkaError._UNKNOWN_PARTITION if cached else KafkaError.UNKNOWN_TOPIC_OR_PART
                reason = f"Failed to get watermark offsets: {KafkaError(code).str()}"
                raise KafkaException(KafkaError(code, reason))
            if cached and (topic, number) not in self._fetch_by_key:
                return OFFSET_INVALID, OFFSET_INVALID
            log = parts[number]
            return log.start, log.end
