"""Restore: reading changelogs back into the stores of the tasks that take them over.

Kafka Streams' StoreChangelogReader, driven as its state updater drives it:
one restore consumer reads the changelog partitions of every task being
restored at once, a bounded batch per call, so the stream worker interleaves
restore with processing and a task restoring never holds up the running ones.

A task's restore (`TaskRestore`) is planned by its StateManager: where each
changelog partition starts (the checkpoint of a persistent store, a standby's
position, or the log start) and where it ends (the high watermark when
restore began). `ChangelogReader.read()` applies one batch and returns the
restores that reached their ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import Consumer
from topicflow.errors import StreamsException
from topicflow.state.flush_stamp import read_flush_stamp

log = logging.getLogger(__name__)

# Records per consume() call while restoring: large, since restore is bulk work.
RESTORE_BATCH = 10_000
# Restore that reads nothing for this long, with records left to read, fails.
STALL_S = 60.0

# Changelog read errors that retrying cannot fix. (An unknown topic may be one
# just created, not yet in every broker's metadata: it is retried, and named
# in the stall's line if it lasts.)
_CHANGELOG_READ_ERRORS = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)

Applier = Callable[[list[Any]], None]


class TaskRestore:
    """One task's changelog partitions to read, from `start` up to `end` (exclusive).

    `finish` runs once every partition reached its end (the StateManager hands
    its stores what restore collected, and logs).
    """

    def __init__(
        self,
        task_id: str,
        partition: int,
        appliers: dict[str, Applier],
        start: dict[str, int],
        end: dict[str, int],
        finish: Callable[[TaskRestore], None],
    ) -> None:
        self.task_id = task_id
        self.partition = partition
        self.appliers = appliers  # changelog topic -> apply a batch of its records
        self.start = start  # changelog topic -> first offset to read
        self.remaining = dict(end)  # changelog topic -> end offset, until reached
        # changelog topic -> the next offset to read: how far each store is.
        self.positions = dict(start)
        self.applied = 0
        self.started = time.monotonic()
        self._finish = finish

    @property
    def done(self) -> bool:
        return not self.remaining

    def finish(self) -> None:
        self._finish(self)


class ChangelogReader:
    """Reads the changelogs of every task being restored, a batch per `read()`."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        # (changelog topic, partition) -> the restore it belongs to, and the next
        # offset to read (where a new assignment resumes it).
        self._owner: dict[tuple[str, int], TaskRestore] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._restores: dict[str, TaskRestore] = {}
        self._idle_since: float | None = None
        # A partition reached its end: assign the others only, at the end of read().
        self._reassign = False
        # The last transient error reading a changelog: named if restore stalls.
        self._last_read_error: str | None = None

    def __bool__(self) -> bool:
        return bool(self._restores)

    def add(self, restore: TaskRestore) -> None:
        """Start reading a task's changelogs (alongside those already being read)."""
        self._restores[restore.task_id] = restore
        for topic in restore.remaining:
            key = (topic, restore.partition)
            self._owner[key] = restore
            self._next[key] = restore.start[topic]
        self._idle_since = None
        if restore.remaining:
            self._assign()

    def remove(self, task_id: str) -> TaskRestore | None:
        """Stop restoring a task (revoked before its restore ended); returns its
        restore, which says how far each store got."""
        restore = self._restores.pop(task_id, None)
        if restore is None:
            return None
        for topic in restore.remaining:
            self._owner.pop((topic, restore.partition), None)
            self._next.pop((topic, restore.partition), None)
        if restore.remaining:
            self._assign()
        return restore

    def _assign(self) -> None:
        # assign() replaces the assignment: every partition still being read is
        # given again at its next offset.
        if self._next:
            self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in self._next.items()])
        else:
            self._consumer.unassign()

    def read(self, timeout: float) -> list[TaskRestore]:
        """Apply one batch of changelog records (waiting up to `timeout` for it);
        the restores that reached their ends, finished."""
        done = [r for r in self._restores.values() if r.done]
        if self._next:
            messages = self._consumer.consume(RESTORE_BATCH, timeout)
            if messages and any(m.error() is not None for m in messages):
                messages = self._without_errors(messages)
            if messages:
                self._idle_since = None
                self._apply(messages)
            else:
                # Nothing, or only transient errors (a broker away): the stall
                # clock runs.
                self._at_end()
            done = [r for r in self._restores.values() if r.done]
        for restore in done:
            del self._restores[restore.task_id]
            restore.finish()
        if self._reassign:
            # Records of a partition no longer assigned are dropped by the consumer,
            # so every record a batch holds belongs to a partition being read.
            self._reassign = False
            self._assign()
        return done

    def _apply(self, messages: list[Any]) -> None:
        if len(self._owner) == 1:
            # One changelog partition (the common case: one task, one store):
            # the whole batch is its, with no per-record sorting.
            ((topic, _partition), restore) = next(iter(self._owner.items()))
            if messages:
                self._applied(topic, restore, messages)
            return
        batches: dict[tuple[str, int], list[Any]] = {}
        for message in messages:
            key = (message.topic(), message.partition())
            batch = batches.get(key)
            if batch is None:
                batches[key] = [message]
            else:
                batch.append(message)
        for (topic, partition), batch in batches.items():
            owner = self._owner.get((topic, partition))
            if owner is not None:  # else: of a task removed since this fetch
                self._applied(topic, owner, batch)

    def _applied(self, topic: str, restore: TaskRestore, batch: list[Any]) -> None:
        restore.appliers[topic](batch)
        restore.applied += len(batch)
        next_offset = batch[-1].offset() + 1
        self._next[(topic, restore.partition)] = next_offset
        restore.positions[topic] = next_offset
        if topic in restore.remaining and next_offset >= restore.remaining[topic]:
            self._reached(topic, restore)

    def _reached(self, topic: str, restore: TaskRestore) -> None:
        del restore.remaining[topic]
        self._owner.pop((topic, restore.partition), None)
        self._next.pop((topic, restore.partition), None)
        self._reassign = True

    def _at_end(self) -> None:
        """Nothing to read: transactional changelogs end with commit markers, which are
        never delivered, so the consumer's position tells whether the end is reached."""
        positions = self._consumer.position([TopicPartition(t, p) for t, p in self._owner])
        for tp in positions:
            restore = self._owner.get((tp.topic, tp.partition))
            if restore is not None and tp.offset >= restore.remaining.get(tp.topic, 0):
                self._reached(tp.topic, restore)
        if not self._owner:
            return
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since > STALL_S:
            last = self._last_read_error
            stalled = sorted({r.task_id for r in self._owner.values()})
            raise StreamsException(
                f"task {', '.join(stalled)}: restoring "
                f"{sorted(f'{t}[{p}]' for t, p in self._owner)} stalled for {STALL_S:.0f} s"
                + (f" (last error: {last})" if last else "")
                + "; is the broker reachable?"
            )

    def _without_errors(self, messages: list[Any]) -> list[Any]:
        """The records of a batch; an error that retrying cannot fix (no right to read
        the changelog, a changelog gone) raises with one line, rather than showing
        up 60 s later as a stall."""
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal() or error.code() in _CHANGELOG_READ_ERRORS:
                where = f"{message.topic()}[{message.partition()}]"
                restore = self._owner.get((message.topic(), message.partition()))
                task = restore.task_id if restore is not None else "?"
                raise StreamsException(
                    f"task {task}: cannot read changelog {where}: {error.str()}; "
                    "the application must be allowed to read (and create) its internal "
                    "topics, which start with its application id"
                )
            else:  # transient (a broker away): the stall check bounds the wait
                self._last_read_error = error.str()
        return records

    def read_all(self) -> None:
        """Read until every restore added is finished (blocking)."""
        while self._restores:
            self.read(0.05)


# Errors of a partition whose leader is not known yet, or of a slow answer.
_PASSING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._UNKNOWN_PARTITION,
}


def watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 30) -> tuple[int, int]:
    """A partition's (low, high) watermarks, retrying what the broker says is passing.

    A topic created a moment ago (the internal topics, at start) answers "not
    leader for partition" until its leader is known: that is a wait, not a failure.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            return int(low), int(high)
        except KafkaException as error:
            kafka_error = error.args[0] if error.args else None
            if kafka_error is None or time.monotonic() >= deadline:
                raise
            if kafka_error.code() not in _PASSING and not kafka_error.retriable():
                raise
            log.info("%s[%d]: %s; retrying", tp.topic, tp.partition, kafka_error.str())
            time.sleep(0.1)


def collecting_stamps(apply: Applier, stamps: dict[bytes, int], replay_from: int) -> Applier:
    """Wrap a batch applier: also note each key's latest flush stamp beyond `replay_from`."""

    def apply_and_collect(messages: list[Any]) -> None:
        apply(messages)
        note_flush_stamps(messages, stamps, replay_from)

    return apply_and_collect


def note_flush_stamps(messages: list[Any], stamps: dict[bytes, int], floor: int) -> None:
    """Per changelog key, the flush stamp of its latest record if beyond `floor`
    (a key whose latest record has none, or one at or below it, is dropped)."""
    for message in messages:
        key = message.key()
        if key is None:
            continue
        stamp = read_flush_stamp(message.headers())
        if stamp is not None and stamp > floor:
            stamps[key] = stamp
        else:
            stamps.pop(key, None)
