"""The embedded broker's consumer, imitating confluent-kafka's `Consumer`.

A consumer either subscribes (joins its group) or is assigned partitions by
hand with `assign()`, outside any group (e.g. to restore state stores from
changelogs), as in Kafka; mixing the two raises KafkaException(_STATE).

Group membership follows the eager protocol with the range assignor (see
`group.py`). As with librdkafka, a member learns of a rebalance inside its own
`consume()`: `on_revoke` then `on_assign` run there, on the member's thread,
and never with the broker's lock held, so callbacks may commit.

Paused partitions return nothing from `consume()` until `resume()`. As in
librdkafka, the pause outlives a rebalance: a paused partition revoked and
assigned back to the same consumer is still paused.
A position below the log start offset (retention dropped the records) is reset
per auto.offset.reset, as Kafka's OFFSET_OUT_OF_RANGE; a position in a gap left
by compaction reads on from the next retained record.
"""

from __future__ import annotations

import gc
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

    __slots__ = ("key", "log", "paused", "position", "stored")

    def __init__(self, key: TopicPartitionKey, log: PartitionLog, position: int) -> None:
        self.key = key
        self.log = log
        self.position = position  # next offset consume() returns
        self.stored = OFFSET_INVALID  # what commit() without arguments commits
        self.paused = False


class EmbeddedConsumer:
    """A consumer of an `EmbeddedBroker`, in its group or assigned; see confluent_kafka.Consumer."""

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
        self._active: list[_Fetch] = []  # the fetches not paused
        self._paused_keys: set[tuple[str, int]] = set()  # kept across rebalances
        self._manual = False  # partitions assigned with assign(), outside the group
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
        if self._manual:
            raise _state_error(
                "subscribe() on a consumer with partitions assigned by assign(): "
                "a consumer either subscribes or assigns; unassign() first"
            )
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

    def consumer_group_metadata(self) -> str:
        """The group this consumer belongs to. The embedded broker has no transactions,
        so nothing consumes it; it exists to match confluent-kafka's Consumer."""
        return self._group_id

    def close(self) -> None:
        """Revoke (calling on_revoke) and leave the group; idempotent, as confluent's."""
        if self._closed:
            return
        try:
            if self._member is not None:
                self._revoke(leaving=True)
            elif self._manual:
                self._unassign()
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
        """The partitions assigned: by the group, or by assign()."""
        self._check_open()
        return [TopicPartition(t, p) for t, p in self._assigned]

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions, replacing any previous assign(), outside the group.

        Each starts at its offset: a concrete one, OFFSET_BEGINNING (the log
        start), OFFSET_END, or OFFSET_STORED/OFFSET_INVALID (the group's committed
        offset); none committed, or out of range: auto.offset.reset. Partitions
        that do not exist are assigned but never return records.

        Inside on_assign (subscribed), it sets the start offsets of the group's
        assignment instead. Elsewhere on a subscribed consumer it raises
        KafkaException(_STATE): a consumer either subscribes or assigns.
        """
        self._check_open()
        if not isinstance(partitions, list):
            raise TypeError("assign() expects a list of TopicPartition")
        if self._in_callback == "assign":
            self._assign_offsets = {(tp.topic, tp.partition): tp.offset for tp in partitions}
            return
        if self._member is not None or self._in_callback:
            raise _state_error(
                "assign() on a subscribed consumer (allowed only inside on_assign): "
                "a consumer either subscribes or assigns; unsubscribe() first"
            )
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if len(set(keys)) != len(keys):
            raise KafkaException(
                KafkaError(KafkaError._INVALID_ARG, "assign(): duplicate partitions")
            )
        broker = self._broker
        with broker._lock:
            group = broker._groups.get(self._group_id)
            committed = group.committed if group is not None else {}
            fetches = []
            for key, tp in zip(keys, partitions, strict=True):
                parts = broker._topics.get(key[0])
                if parts is None or not 0 <= key[1] < len(parts):
                    continue
                log = parts[key[1]]
                offset = tp.offset
                if offset in (OFFSET_INVALID, OFFSET_STORED):
                    offset = committed.get(key, OFFSET_INVALID)
                fetches.append(_Fetch(key, log, self._resolve(offset, log)))
            self._assigned = keys
            self._set_fetches_locked(fetches)
            self._manual = bool(keys)
            # A consume() blocked in another thread waits for the old partitions.
            self._wakeup.notify_all()

    def unassign(self) -> None:
        """Drop the partitions assigned by assign().

        Inside on_revoke it is what happens anyway; elsewhere on a subscribed
        consumer it raises KafkaException(_STATE): use unsubscribe().
        """
        self._check_open()
        if self._in_callback == "revoke":
            return
        if self._member is not None or self._in_callback:
            raise _state_error(
                "unassign() on a subscribed consumer (allowed only inside on_revoke): "
                "unsubscribe() leaves the group"
            )
        self._unassign()

    def _unassign(self) -> None:
        with self._broker._lock:
            # As librdkafka: auto-commit what was consumed before the partitions go.
            if self._auto_commit and self._fetches:
                self._commit_locked(None)
            self._assigned = []
            self._set_fetches_locked([])
            self._manual = False
            self._wakeup.notify_all()

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

    def _set_fetches_locked(self, fetches: list[_Fetch]) -> None:
        self._fetches = fetches
        self._fetch_by_key = {f.key: f for f in fetches}
        for fetch in fetches:
            fetch.paused = fetch.key in self._paused_keys
        self._active = [f for f in fetches if not f.paused]

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
            chunks: list[tuple[TopicPartitionKey, Chunk]] = []
            with broker._lock:
                member, group = self._member, self._group
                if member is not None and group is not None:
                    revoke = group.must_revoke(member)
                    if not revoke:
                        assigned = group.take_assignment(member)
                if not revoke and assigned is None:
                    if self._active and num_messages:
                        chunks = self._fetch_locked(num_messages)
                    if self._auto_commit:
                        self._auto_commit_locked()
                    if not chunks:
                        remaining = None if deadline is None else deadline - monotonic()
                        if remaining is not None and remaining <= 0:
                            return []
                        keys = [f.key for f in self._active]
                        broker._wait_locked(self._wakeup, keys, remaining)
                        if self._closed:
                            raise RuntimeError("Consumer closed")
                        continue
            if chunks:
                # Messages are built without the lock: producers need not wait for it.
                return _messages(chunks)
            # The rebalance callbacks run without the lock too, on this thread.
            if revoke:
                self._revoke(leaving=False)
            elif assigned is not None:
                self._take(assigned)

    def poll(self, timeout: float = -1) -> Any:
        """One record or None, like confluent's poll()."""
        messages = self.consume(1, timeout)
        return messages[0] if messages else None

    def _fetch_locked(self, limit: int) -> list[tuple[TopicPartitionKey, Chunk]]:
        """Take up to `limit` records of the partitions not paused, per partition."""
        fetches = self._active
        count = len(fetches)
        start = self._cursor % count
        self._cursor = start + 1
        auto_store = self._auto_store
        chunks: list[tuple[TopicPartitionKey, Chunk]] = []
        remaining = limit
        # Each partition with records gets an equal share; what some leave unused
        # goes round again to those that have more.
        share = max(1, limit // count)
        while True:
            more = 0
            for i in range(count):
                f = fetches[(start + i) % count]
                log = f.log
                position = f.position
                if position < log.start:
                    # Kafka's OFFSET_OUT_OF_RANGE: retention dropped the records.
                    position = f.position = log.start if self._earliest else log.end
                chunk = log.read(position, share if share < remaining else remaining)
                if chunk is None:
                    continue
                offsets = chunk.offsets
                end = offsets[-1] + 1
                chunks.append((f.key, chunk))
                f.position = end
                if auto_store:
                    f.stored = end
                remaining -= len(offsets)
                if not remaining:
                    return chunks
                if end < log.end:
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
                self._assigned = []
                self._set_fetches_locked([])
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
            fetches.append(_Fetch(key, log, self._resolve(offset, log)))
        self._assigned = list(assigned)
        self._set_fetches_locked(fetches)

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

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Consumer closed")


def _messages(chunks: list[tuple[TopicPartitionKey, Chunk]]) -> list[Any]:
    """The messages of the chunks, built with the cyclic GC paused.

    A batch is thousands of GC-tracked objects alive at once: built with the GC
    on, its messages survive the young collections that their own allocation
    triggers and get promoted, so a batch cost as much in GC as in building it
    (~160 ns a message, half of the restore loop). Built with the GC paused,
    the previous batch, freed meanwhile, pays for them: young collections stay
    rare and short. It is a process-wide switch, restored at once; it is left
    alone when the application disabled the GC itself.
    """
    out: list[Any] = []
    if not gc.isenabled():
        for (topic, partition), chunk in chunks:
            out += messages(topic, partition, chunk)
        return out
    gc.disable()
    try:
        for (topic, partition), chunk in chunks:
            out += messages(topic, partition, chunk)
    finally:
        gc.enable()
    return out


def _state_error(reason: str) -> KafkaException:
    return KafkaException(KafkaError(KafkaError._STATE, reason))
