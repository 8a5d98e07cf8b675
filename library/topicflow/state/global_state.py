"""The global stores of one instance: Kafka Streams' GlobalStateManagerImpl.

A global store holds every partition of its topic, and the topic is its log:
no changelog. Records apply in offset order per partition, as the global
stream thread (runtime/global_stream_thread.py) or the test driver hands them
over: each is deserialized with its source's serdes (a record that cannot be
goes to the deserialization exception handler), a null key is dropped
(counted), a null value deletes the key, any other value is stored with the
record's timestamp.

A persistent (RocksDB) store keeps a checkpoint of the offsets it holds
(`{state_dir}/{application_id}/global/.checkpoint`), so a restart reads only
the rest of the topic; a store opened without one is wiped first, since what
it holds is of unknown age. An in-memory store reloads from the start.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from topicflow.config import StreamsConfig
from topicflow.serdes import bytes_decoder
from topicflow.state.stores import (
    TIMESTAMPED_MARKER,
    InMemoryKeyValueStore,
    StoreSpec,
    TimestampedSerde,
)
from topicflow.topology.nodes import SourceNode, TaskMetrics
from topicflow.topology.topology import Topology

log = logging.getLogger(__name__)

# (message, error): a record of a global topic that cannot be deserialized.
BadRecord = Callable[[Any, Exception], None]
# (topic, partition) -> the next offset to read.
Offsets = dict[tuple[str, int], int]


class GlobalKeyValueStore:
    """A global store as the tasks' processors see it: read-only (the global
    stream thread alone writes it), values without their timestamps."""

    def __init__(self, spec: StoreSpec, inner: Any) -> None:
        self.spec = spec
        self.name = spec.name
        self.inner = inner

    def get(self, key: Any) -> Any:
        entry = self.inner.get(key)
        return None if entry is None else entry[0]

    def get_with_timestamp(self, key: Any) -> tuple[Any, int] | None:
        """The entry of `key`: (value, timestamp of the record that set it); or None."""
        return self.inner.get(key)  # type: ignore[no-any-return]

    def all(self) -> Iterator[tuple[Any, Any]]:
        for key, entry in self.inner.all():
            yield key, entry[0]

    def approximate_num_entries(self) -> int:
        return self.inner.approximate_num_entries()  # type: ignore[no-any-return]


class GlobalStateManager:
    """The global stores of a topology, how far each topic partition is, and the checkpoint."""

    def __init__(
        self,
        topology: Topology,
        config: StreamsConfig,
        metrics: TaskMetrics,
        bad_record: BadRecord,
        directory: Path | None = None,
    ) -> None:
        self._config = config
        self._metrics = metrics
        self._bad_record = bad_record
        self._directory = directory or Path(config.state_dir) / config.application_id / "global"
        self._persistent = any(g.spec.persistent for g in topology.global_stores.values())
        checkpoint = self._read_checkpoint() if self._persistent else {}
        self.stores: dict[str, GlobalKeyValueStore] = {}
        self.appliers: dict[str, Callable[[list[Any]], None]] = {}  # by topic
        for name, source in topology.global_stores.items():
            spec = source.spec
            node = topology.nodes[source.source_name]
            assert isinstance(node, SourceNode)
            key_serde = spec.key_serde or node.key_serde or config.default_key_serde
            value_serde = spec.value_serde or node.value_serde or config.default_value_serde
            if spec.persistent:
                from topicflow.state.rocksdb import RocksDBKeyValueStore

                path = self._directory / spec.name
                if not any(topic == source.topic for topic, _ in checkpoint):
                    shutil.rmtree(path, ignore_errors=True)
                inner: Any = RocksDBKeyValueStore(
                    spec.name, path, key_serde, TimestampedSerde(value_serde)
                )
                (path / TIMESTAMPED_MARKER).touch()
            else:
                inner = InMemoryKeyValueStore(spec.name)
            self.stores[name] = GlobalKeyValueStore(spec, inner)
            self.appliers[source.topic] = self._applier(inner, node, key_serde, value_serde)
        # Where each partition of a persistent store's topic resumes.
        persistent_topics = {g.topic for g in topology.global_stores.values() if g.spec.persistent}
        self.checkpointed: Offsets = {
            tp: offset for tp, offset in checkpoint.items() if tp[0] in persistent_topics
        }

    def _applier(
        self, inner: Any, node: SourceNode, key_serde: Any, value_serde: Any
    ) -> Callable[[list[Any]], None]:
        decode_key, decode_value = bytes_decoder(key_serde), bytes_decoder(value_serde)
        extractor = node.timestamp_extractor
        put = inner.put
        metrics, bad_record = self._metrics, self._bad_record

        def apply(messages: list[Any]) -> None:
            for message in messages:
                try:
                    key = message.key()
                    if key is not None and decode_key is not None:
                        key = decode_key(key)
                    value = message.value()
                    if value is not None and decode_value is not None:
                        value = decode_value(value)
                except Exception as error:
                    bad_record(message, error)
                    continue
                if key is None:
                    metrics.dropped_records += 1
                    continue
                timestamp = message.timestamp()[1]
                if extractor is not None:
                    timestamp = extractor(timestamp, key, value, timestamp)
                put(key, None if value is None else (value, timestamp))

        return apply

    def apply(self, messages: list[Any]) -> None:
        """Apply consumed records of any global topics, in the order given."""
        if not messages:
            return
        topic = messages[0].topic()
        if all(m.topic() == topic for m in messages):
            self.appliers[topic](messages)
            return
        for message in messages:
            self.appliers[message.topic()]([message])

    # -- checkpoints ------------------------------------------------------------------

    def _checkpoint_path(self) -> Path:
        return self._directory / ".checkpoint"

    def _read_checkpoint(self) -> Offsets:
        try:
            data = json.loads(self._checkpoint_path().read_text())
            offsets: Offsets = {}
            for name, offset in data.items():
                topic, _, partition = str(name).rpartition(":")
                offsets[(topic, int(partition))] = int(offset)
            return offsets
        except (OSError, ValueError):
            return {}

    def checkpoint(self, positions: Offsets) -> None:
        """Remember how far the persistent stores are: flushed first (their writes skip
        RocksDB's write-ahead log), so the checkpoint never vouches for writes a crash
        could lose. Records past it are applied again after a restart: the same
        values, in the same order."""
        if not self._persistent:
            return
        for store in self.stores.values():
            if store.spec.persistent:
                store.inner.flush()
        offsets = {f"{t}:{p}": o for (t, p), o in sorted(positions.items()) if o >= 0}
        self._directory.mkdir(parents=True, exist_ok=True)
        tmp = self._checkpoint_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(offsets))
        os.replace(tmp, self._checkpoint_path())

    def wipe(self) -> None:
        """The checkpoint is of no use (the topic was truncated past it): forget it.
        The persistent stores are emptied, and reload from the topic's start."""
        self.checkpointed = {}
        self._checkpoint_path().unlink(missing_ok=True)
        for store in self.stores.values():
            if store.spec.persistent:
                for key, _entry in list(store.inner.all()):
                    store.inner.delete(key)

    def close(self) -> None:
        for store in self.stores.values():
            store.inner.close()
