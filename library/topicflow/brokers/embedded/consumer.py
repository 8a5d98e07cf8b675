"""The embedded broker's consumer, imitating confluent-kafka's `Consumer`.

Built in layers, each a module: the subscription state (assignment, fetch
positions, pauses: `subscription_state.py`), offsets (commits, watermarks:
`consumer_offsets.py`), group membership and assignment
(`consumer_coordinator.py`), and here the fetching itself: `consume()` and
`poll()`, the per-record path, kept in one class with no indirection.

A consumer either subscribes (joins its group) or is assigned partitions by
hand with `assign()`, outside any group (e.g. to restore state stores from
changelogs), as in Kafka; mixing the two raises KafkaException(_STATE).
As with librdkafka, a member learns of a rebalance inside its own
`consume()`: `on_revoke` then `on_assign` run there, on the member's thread,
and never with the broker's lock held, so callbacks may commit.

A position below the log start offset (retention dropped the records) is reset
per auto.offset.reset, as Kafka's OFFSET_OUT_OF_RANGE; a position in a gap left
by compaction reads on from the next retained record.
"""

from __future__ import annotations

import gc
from time import monotonic
from typing import Any

from topicflow.brokers.embedded.consumer_coordinator import ConsumerCoordinator
from topicflow.brokers.embedded.group import TopicPartitionKey
from topicflow.brokers.embedded.log import Chunk, messages

__all__ = ["EmbeddedConsumer"]


class EmbeddedConsumer(ConsumerCoordinator):
    """A consumer of an `EmbeddedBroker`, in its group or assigned; see confluent_kafka.Consumer."""

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
