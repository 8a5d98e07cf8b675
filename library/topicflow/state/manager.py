"""StateManager: the stores of one task, their changelogs, restore and checkpoints.

Kafka Streams' ProcessorStateManager plus its StoreChangelogReader. A task
that takes over a partition restores each logged store from its changelog
partition before processing any record: a restore consumer reads from the
checkpointed offset (persistent stores whose local copy is intact) or from the
beginning, to the high watermark read when restore began, in large batches.

Checkpoints (`{state_dir}/{application_id}/{task}/.checkpoint`) matter for
persistent stores only (an in-memory store is empty after a restart). One is
written when the task closes cleanly and deleted once restore has read it, so a
crash never leaves a checkpoint behind: a persistent store opened without one
is wiped and restored in full, since its local copy may hold writes that never
reached the changelog.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import StreamsException
from topicflow.serdes import Serde
from topicflow.state.flush_stamp import read_flush_stamp
from topicflow.state.logged import (
    CachedKeyValueStore,
    CachedSessionStore,
    CachedWindowStore,
    ChangelogWriter,
    split_window_changelog_key,
)
from topicflow.state.session_store import InMemorySessionStore, split_session_changelog_key
from topicflow.state.stores import (
    TIMESTAMP_PREFIX,
    TIMESTAMPED_MARKER,
    InMemoryKeyValueStore,
    InMemoryWindowStore,
    StoreSpec,
    TimestampedSerde,
)
from topicflow.topology.nodes import RecordContext, RecordSender

log = logging.getLogger(__name__)

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

# Records per consume() call while restoring: large, since restore is bulk work.
RESTORE_BATCH = 10_000
# Kafka Streams' record cache estimate per entry; statestore_cache_max_bytes / this = entries.
CACHE_ENTRY_BYTES = 128

Store = CachedKeyValueStore | CachedWindowStore | CachedSessionStore


@dataclass
class WarmState:
    """A standby task's stores, handed over to the active task that takes its place.

    `positions`: per changelog topic, the next offset the standby would have read;
    restore continues from there. `stamps`: per changelog topic, the flush stamps
    of recent changelog records (idempotent state), as restore collects them.
    """

    inners: dict[str, Any]  # store name -> in-memory store, or a persistent one's folder
    positions: dict[str, int]
    stamps: dict[str, dict[bytes, int]] = field(default_factory=dict)


def _on_disk(spec: StoreSpec, value_serde: Serde[Any]) -> Serde[Any]:
    return TimestampedSerde(value_serde) if spec.timestamped else value_serde


def _plain_bytes(message: Any) -> bytes | None:
    return message.value()  # type: ignore[no-any-return]


def _timestamped_bytes(message: Any) -> bytes | None:
    """A changelog record as a timestamped store keeps it on disk (`TimestampedSerde`)."""
    value = message.value()
    return None if value is None else TIMESTAMP_PREFIX.pack(message.timestamp()[1]) + value


class StateManager:
    def __init__(
        self,
        task_id: str,
        partition: int,
        specs: list[StoreSpec],
        config: StreamsConfig,
        sender: RecordSender,
        record_context: RecordContext,
        flushed_through: Callable[[], int] | None = None,
        warm: WarmState | None = None,
        directory: Path | None = None,
    ) -> None:
        self._task_id = task_id
        self._partition = partition
        self._config = config
        self._directory = directory or Path(config.state_dir) / config.application_id / task_id
        self._checkpoint = self._read_checkpoint()
        # A standby's stores taken over: restore continues where the standby stood.
        self._warm = warm
        # The last transient error reading a changelog: named if restore stalls.
        self._last_read_error: str | None = None
        self.stores: dict[str, Store] = {}
        self._changelogs: dict[str, Store] = {}  # changelog topic -> store
        cache_entries = config.statestore_cache_max_bytes // CACHE_ENTRY_BYTES
        for spec in specs:
            key_serde = spec.key_serde or config.default_key_serde
            value_serde = spec.value_serde or config.default_value_serde
            changelog = None
            if spec.logging:
                topic = spec.changelog_topic(config.application_id)
                changelog = ChangelogWriter(topic, partition, sender, key_serde, value_serde)
            store: Store
            # A standby's in-memory store is taken as it is; a persistent one
            # arrives as its closed folder (see _local_copy).
            inner: Any = warm.inners.get(spec.name) if warm is not None else None
            if isinstance(inner, Path):
                inner = None
            if spec.kind == "key_value":
                if inner is None:
                    inner = self._inner_key_value(spec, key_serde, value_serde)
                store = CachedKeyValueStore(spec, inner, changelog, record_context, cache_entries)
            elif spec.kind == "window":
                if inner is None:
                    inner = self._inner_window(spec, key_serde, value_serde)
                store = CachedWindowStore(spec, inner, changelog, record_context, cache_entries)
            elif spec.kind == "session":
                if spec.persistent:
                    raise StreamsException(
                        f"store {spec.name!r}: persistent session stores are not supported; "
                        "use an in-memory one"
                    )
                if inner is None:
                    inner = InMemorySessionStore(spec.name, spec.retention_ms)
                store = CachedSessionStore(spec, inner, changelog, record_context, cache_entries)
            else:
                raise StreamsException(f"store {spec.name!r}: {spec.kind} stores are not supported")
            store.serialize_key = key_serde.serialize
            self.stores[spec.name] = store
            if changelog is not None:
                self._changelogs[changelog.topic] = store
                if flushed_through is not None:
                    store.stamp_flushes(flushed_through)

    def _local_copy(self, spec: StoreSpec) -> Path:
        """The folder of a persistent store; wiped unless a clean close checkpointed it."""
        path = self._directory / spec.name
        taken = self._warm.inners.get(spec.name) if self._warm is not None else None
        if isinstance(taken, Path):
            # A standby's copy, up to date to its position: moved into place.
            shutil.rmtree(path, ignore_errors=True)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(taken, path)
        elif spec.changelog_topic(self._config.application_id) not in self._checkpoint:
            shutil.rmtree(path, ignore_errors=True)
        elif spec.timestamped and path.exists() and not (path / TIMESTAMPED_MARKER).exists():
            # Written before stores were timestamped: values without their
            # timestamps. Wiped, and restored in full from the changelog, which
            # has every value's timestamp.
            log.info("store %s: local copy predates timestamped stores; restoring it", spec.name)
            shutil.rmtree(path, ignore_errors=True)
            del self._checkpoint[spec.changelog_topic(self._config.application_id)]
        return path

    @staticmethod
    def _mark_format(spec: StoreSpec, path: Path) -> None:
        if spec.timestamped:
            (path / TIMESTAMPED_MARKER).touch()

    def _inner_key_value(
        self, spec: StoreSpec, key_serde: Serde[Any], value_serde: Serde[Any]
    ) -> Any:
        if spec.persistent:
            from topicflow.state.rocksdb import RocksDBKeyValueStore

            path = self._local_copy(spec)
            store = RocksDBKeyValueStore(spec.name, path, key_serde, _on_disk(spec, value_serde))
            self._mark_format(spec, path)
            return store
        return InMemoryKeyValueStore(spec.name)

    def _inner_window(self, spec: StoreSpec, key_serde: Serde[Any], value_serde: Serde[Any]) -> Any:
        if spec.persistent:
            from topicflow.state.rocksdb import RocksDBWindowStore

            path = self._local_copy(spec)
            store = RocksDBWindowStore(
                spec.name, path, spec.retention_ms, key_serde, _on_disk(spec, value_serde)
            )
            self._mark_format(spec, path)
            return store
        return InMemoryWindowStore(spec.name, spec.retention_ms)

    # -- restore ----------------------------------------------------------------------

    @property
    def needs_restore(self) -> bool:
        return bool(self._changelogs)

    def _without_errors(self, messages: list[Any]) -> list[Any]:
        """The records of a restore batch; an error that retrying cannot fix (no right
        to read the changelog, a changelog gone) raises with one line, rather than
        showing up 60 s later as a stall."""
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal() or error.code() in _CHANGELOG_READ_ERRORS:
                where = f"{message.topic()}[{message.partition()}]"
                raise StreamsException(
                    f"task {self._task_id}: cannot read changelog {where}: {error.str()}; "
                    "the application must be allowed to read (and create) its internal "
                    "topics, which start with its application id"
                )
            else:  # transient (a broker away): the stall check bounds the wait
                self._last_read_error = error.str()
        return records

    def restore(self, consumer: Consumer, replay_from: int | None = None) -> int:
        """Bring every logged store up to its changelog's end; returns records applied.

        Idempotent state: `replay_from` is the task's committed input offset,
        where processing resumes. Changelog records stamped beyond it were written
        after that commit: their keys get replay stamps (see runtime/replay.py).
        """
        checkpoint, self._checkpoint = self._checkpoint, {}
        self._delete_checkpoint()
        warm, self._warm = self._warm, None
        start: dict[str, int] = {}
        end: dict[str, int] = {}
        for topic, store in self._changelogs.items():
            tp = TopicPartition(topic, self._partition)
            low, high = watermarks(consumer, tp)
            if warm is not None and topic in warm.positions:
                offset: int | None = warm.positions[topic]
            else:
                offset = checkpoint.get(topic) if store.inner.persistent else None
            if offset is None or offset < low or offset > high:
                offset = OFFSET_BEGINNING if low == 0 else low
            start[topic] = offset
            if high > max(offset, low):
                end[topic] = high
        stamps: dict[str, dict[bytes, int]] = {}
        if replay_from is not None:
            for topic, store in self._changelogs.items():
                if store.stamped:
                    recent = warm.stamps.get(topic, {}) if warm is not None else {}
                    stamps[topic] = {k: g for k, g in recent.items() if g > replay_from}
        if not end:
            for topic, by_key in stamps.items():
                self._set_replay_stamps(self._changelogs[topic], by_key)
            return 0
        started = time.monotonic()
        consumer.assign([TopicPartition(t, self._partition, start[t]) for t in end])
        applied = 0
        try:
            appliers = {topic: self._batch_applier(self._changelogs[topic]) for topic in end}
            if replay_from is not None:
                for topic in end:
                    if topic in stamps:
                        appliers[topic] = collecting_stamps(
                            appliers[topic], stamps[topic], replay_from
                        )
            single = next(iter(appliers.values())) if len(appliers) == 1 else None
            remaining = dict(end)
            idle_deadline = time.monotonic() + 60
            while remaining:
                # consume() waits for a full batch or its timeout: a short timeout
                # keeps the last, partial batch (and offset gaps left by
                # compaction) from costing the whole wait.
                messages = consumer.consume(RESTORE_BATCH, 0.05)
                if not messages:
                    # Transactional changelogs end with commit markers, which are never
                    # delivered: the consumer's position tells when the end is reached.
                    for tp in consumer.position(
                        [TopicPartition(t, self._partition) for t in remaining]
                    ):
                        if tp.offset >= remaining[tp.topic]:
                            del remaining[tp.topic]
                    if not remaining:
                        break
                    if time.monotonic() > idle_deadline:
                        last = self._last_read_error
                        raise StreamsException(
                            f"task {self._task_id}: restoring {sorted(remaining)} stalled "
                            "for 60 s"
                            + (f" (last error: {last})" if last else "")
                            + "; is the broker reachable?"
                        )
                    continue
                idle_deadline = time.monotonic() + 60
                if any(m.error() is not None for m in messages):
                    messages = self._without_errors(messages)
                if single is not None:
                    batches = {next(iter(remaining)): messages} if messages else {}
                else:
                    batches = {}
                    for message in messages:
                        batches.setdefault(message.topic(), []).append(message)
                for topic, batch in batches.items():
                    (single or appliers[topic])(batch)
                    if topic in remaining and batch[-1].offset() + 1 >= remaining[topic]:
                        del remaining[topic]
                applied += len(messages)
        finally:
            consumer.unassign()
        for topic, by_key in stamps.items():
            self._set_replay_stamps(self._changelogs[topic], by_key)
        log.info(
            "task %s restored %d changelog records in %.2f s",
            self._task_id,
            applied,
            time.monotonic() - started,
        )
        return applied

    def _batch_applier(self, store: Store) -> Callable[[list[Any]], None]:
        """Apply a batch of changelog messages to a store.

        A persistent store takes the serialized bytes as they are (one RocksDB
        write batch, no deserializing); an in-memory store gets objects. A
        timestamped store's value takes the changelog record's timestamp, which
        is where Kafka Streams' changelogs keep it (the value bytes are the
        plain value, so changelogs written before stores were timestamped
        restore the same way).
        """
        restore_batch = getattr(store.inner, "restore_batch", None)
        if restore_batch is None:
            apply = self._applier(store)

            def apply_each(messages: list[Any]) -> None:
                for message in messages:
                    apply(message)

            return apply_each
        raw_value = _timestamped_bytes if store.spec.timestamped else _plain_bytes
        if isinstance(store, CachedWindowStore):

            def apply_windows(messages: list[Any]) -> None:
                records = []
                for message in messages:
                    key = message.key()
                    if key is not None:
                        key_bytes, window_start = split_window_changelog_key(key)
                        records.append((key_bytes, window_start, raw_value(message)))
                restore_batch(records)

            return apply_windows

        def apply_pairs(messages: list[Any]) -> None:
            restore_batch([(m.key(), raw_value(m)) for m in messages])

        return apply_pairs

    def _applier(self, store: Store) -> Callable[[Any], None]:
        spec = store.spec
        key_serde = spec.key_serde or self._config.default_key_serde
        value_serde = spec.value_serde or self._config.default_value_serde
        deserialize_key, deserialize_value = key_serde.deserialize, value_serde.deserialize
        if isinstance(store, CachedWindowStore):
            restore_window = store.restore

            def apply_window(message: Any) -> None:
                key, value = message.key(), message.value()
                if key is None:
                    return
                key_bytes, window_start = split_window_changelog_key(key)
                restore_window(
                    deserialize_key(key_bytes),
                    window_start,
                    None if value is None else deserialize_value(value),
                    message.timestamp()[1],
                )

            return apply_window
        if isinstance(store, CachedSessionStore):
            restore_session = store.restore

            def apply_session(message: Any) -> None:
                key, value = message.key(), message.value()
                if key is None:
                    return
                key_bytes, start, end = split_session_changelog_key(key)
                restore_session(
                    deserialize_key(key_bytes),
                    start,
                    end,
                    None if value is None else deserialize_value(value),
                )

            return apply_session
        restore = store.restore

        def apply(message: Any) -> None:
            value = message.value()
            restore(
                deserialize_key(message.key()),
                None if value is None else deserialize_value(value),
                message.timestamp()[1],
            )

        return apply

    def _set_replay_stamps(self, store: Store, by_key: dict[bytes, int]) -> None:
        """Hand a store the stamps of its replayed keys, keyed as its cache keys them."""
        if not by_key:
            return
        spec = store.spec
        deserialize_key = (spec.key_serde or self._config.default_key_serde).deserialize
        stamps: dict[Any, int] = {}
        if isinstance(store, CachedWindowStore):
            for changelog_key, stamp in by_key.items():
                key_bytes, window_start = split_window_changelog_key(changelog_key)
                stamps[(deserialize_key(key_bytes), window_start)] = stamp
        elif isinstance(store, CachedKeyValueStore):
            for changelog_key, stamp in by_key.items():
                stamps[deserialize_key(changelog_key)] = stamp
        else:
            return  # session stores: replays stay at-least-once
        store.set_replay_stamps(stamps)
        log.info(
            "task %s: %d keys of store %s were written after the last commit; a replay "
            "will not apply their records again",
            self._task_id,
            len(stamps),
            spec.name,
        )

    # -- standby ----------------------------------------------------------------------

    def changelog_appliers(self) -> dict[str, Callable[[list[Any]], None]]:
        """Per changelog topic: apply a batch of its messages (a standby's updates)."""
        return {topic: self._batch_applier(store) for topic, store in self._changelogs.items()}

    def hand_over(
        self, positions: dict[str, int], stamps: dict[str, dict[bytes, int]]
    ) -> WarmState:
        """The inner stores, for the active task taking over (this manager is done)."""
        inners: dict[str, Any] = {}
        for name, store in self.stores.items():
            inner = store.inner
            if inner.persistent:
                # Reopened by the active task in its own folder: flushed (the
                # write-ahead log is off) and closed here.
                inner.flush()
                inner.close()
                inners[name] = inner.path
            else:
                inners[name] = inner
        self.stores.clear()
        self._changelogs.clear()
        return WarmState(inners, positions, stamps)

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint_path(self) -> Path:
        return self._directory / ".checkpoint"

    def _read_checkpoint(self) -> dict[str, int]:
        try:
            data = json.loads(self._checkpoint_path().read_text())
            return {str(k): int(v) for k, v in data.items()}
        except (OSError, ValueError):
            return {}

    def write_checkpoint(self, consumer: Consumer) -> None:
        """After a clean flush: remember how far each persistent store is in its changelog.

        Only this task writes its changelog partitions, so once the producer is
        flushed their high watermarks are where the local stores stand.
        """
        offsets = {}
        for store in self._changelogs.values():
            if store.inner.persistent:
                # RocksDB writes skip its write-ahead log (the changelog is the
                # log): until flushed they live in memory only, and a checkpoint
                # must not vouch for writes a crash could still lose.
                store.inner.flush()
        for topic, store in self._changelogs.items():
            if store.inner.persistent:
                _low, high = watermarks(consumer, TopicPartition(topic, self._partition), 10)
                offsets[topic] = high
        if not offsets:
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        tmp = self._checkpoint_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(offsets))
        os.replace(tmp, self._checkpoint_path())

    def _delete_checkpoint(self) -> None:
        self._checkpoint_path().unlink(missing_ok=True)

    def discard_checkpoint(self) -> None:
        """The task runs again: its stores will move past the checkpoint."""
        self._checkpoint = {}
        self._delete_checkpoint()

    # -- commit and close -------------------------------------------------------------

    def flush(self) -> None:
        for store in self.stores.values():
            store.flush()

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


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


def collecting_stamps(
    apply: Callable[[list[Any]], None], stamps: dict[bytes, int], replay_from: int
) -> Callable[[list[Any]], None]:
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
