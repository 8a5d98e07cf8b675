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

from confluent_kafka import TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import StreamsException
from topicflow.serdes import Serde, resolve_serde
from topicflow.state.changelog_apply import Store, batch_applier, set_replay_stamps
from topicflow.state.join_stores import (
    InMemoryJoinWindowStore,
    InMemorySortedKeyValueStore,
    SharedJoinStore,
    shared_store_serdes,
)
from topicflow.state.logged.cached_key_value import CachedKeyValueStore
from topicflow.state.logged.cached_session import CachedSessionStore
from topicflow.state.logged.cached_window import CachedWindowStore
from topicflow.state.logged.changelog import ChangelogWriter
from topicflow.state.restore import (
    ChangelogReader,
    TaskRestore,
    collecting_stamps,
    watermarks,
)
from topicflow.state.session_store import InMemorySessionStore
from topicflow.state.stores import (
    TIMESTAMPED_MARKER,
    InMemoryKeyValueStore,
    InMemoryWindowStore,
    StoreSpec,
    TimestampedSerde,
)
from topicflow.topology.nodes import RecordContext, RecordSender

log = logging.getLogger(__name__)

# Kafka Streams' record cache estimate per entry; statestore_cache_max_bytes / this = entries.
CACHE_ENTRY_BYTES = 128


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
        self.stores: dict[str, Store] = {}
        self._changelogs: dict[str, Store] = {}  # changelog topic -> store
        cache_entries = config.statestore_cache_max_bytes // CACHE_ENTRY_BYTES
        for spec in specs:
            key_serde = spec.key_serde or config.default_key_serde
            value_serde = resolve_serde(spec.value_serde, config.default_value_serde)
            shared_join_store = spec.kind == "key_value" and spec.retain_duplicates
            if shared_join_store:
                key_serde, value_serde = shared_store_serdes(
                    spec, key_serde, config.default_value_serde
                )
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
            if shared_join_store:
                if inner is None:
                    inner = self._inner_key_value(spec, key_serde, value_serde)
                store = SharedJoinStore(spec, inner, changelog, record_context, 0)
            elif spec.kind == "key_value":
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
            store.serialize_value = value_serde.serialize
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
        if spec.retain_duplicates:
            return InMemorySortedKeyValueStore(spec.name, key_serde)
        return InMemoryKeyValueStore(spec.name)

    def _inner_window(self, spec: StoreSpec, key_serde: Serde[Any], value_serde: Serde[Any]) -> Any:
        if spec.persistent:
            from topicflow.state.rocksdb import RocksDBWindowStore
            from topicflow.state.rocksdb_join_store import RocksDBJoinWindowStore

            path = self._local_copy(spec)
            kind = RocksDBJoinWindowStore if spec.retain_duplicates else RocksDBWindowStore
            store = kind(spec.name, path, spec.retention_ms, key_serde, _on_disk(spec, value_serde))
            self._mark_format(spec, path)
            return store
        if spec.retain_duplicates:
            return InMemoryJoinWindowStore(spec.name, spec.retention_ms)
        return InMemoryWindowStore(spec.name, spec.retention_ms)

    # -- restore ----------------------------------------------------------------------

    @property
    def needs_restore(self) -> bool:
        return bool(self._changelogs)

    def begin_restore(self, consumer: Consumer, replay_from: int | None = None) -> TaskRestore:
        """Plan bringing every logged store up to its changelog's end (what
        `ChangelogReader` then reads, with `consumer`'s watermarks).

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
        appliers = {topic: batch_applier(self._changelogs[topic], self._config) for topic in end}
        if replay_from is not None:
            for topic in end:
                if topic in stamps:
                    appliers[topic] = collecting_stamps(appliers[topic], stamps[topic], replay_from)

        def finish(restore: TaskRestore) -> None:
            for topic, by_key in stamps.items():
                set_replay_stamps(self._task_id, self._changelogs[topic], by_key, self._config)
            if end:
                log.info(
                    "task %s restored %d changelog records in %.2f s",
                    self._task_id,
                    restore.applied,
                    time.monotonic() - restore.started,
                )

        return TaskRestore(self._task_id, self._partition, appliers, start, end, finish)

    def restore(self, consumer: Consumer, replay_from: int | None = None) -> int:
        """Restore this task's stores alone, blocking; returns the records applied."""
        restore = self.begin_restore(consumer, replay_from)
        if restore.done:
            restore.finish()
            return 0
        reader = ChangelogReader(consumer)
        reader.add(restore)
        try:
            reader.read_all()
        finally:
            consumer.unassign()
        return restore.applied

    # -- standby ----------------------------------------------------------------------

    def changelog_appliers(self) -> dict[str, Callable[[list[Any]], None]]:
        """Per changelog topic: apply a batch of its messages (a standby's updates)."""
        return {
            topic: batch_applier(store, self._config) for topic, store in self._changelogs.items()
        }

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
        if offsets:
            self._write_checkpoint_file(offsets)

    def checkpoint_restore(self, restore: TaskRestore) -> None:
        """A restore stopped before its end (the task was revoked, or the worker is
        closing): checkpoint how far each persistent store got, so that whoever
        restores it next reads only the rest (Kafka Streams does the same).

        Not under idempotent state: the replay stamps collected so far would be
        lost, and a later restore from the checkpoint would miss them.
        """
        if self._config.stamps_replays:
            return
        offsets = {}
        for topic, store in self._changelogs.items():
            position = restore.positions.get(topic, -1)
            if store.inner.persistent and position >= 0:
                store.inner.flush()  # its writes skip RocksDB's write-ahead log
                offsets[topic] = position
        if offsets:
            self._write_checkpoint_file(offsets)

    def _write_checkpoint_file(self, offsets: dict[str, int]) -> None:
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
