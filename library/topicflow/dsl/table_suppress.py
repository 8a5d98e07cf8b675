"""`KTable.suppress(Suppressed.until_time_limit(...))`: Kafka Streams' KTableSuppressProcessor
over its in-memory time-ordered buffer (InMemoryTimeOrderedKeyValueChangeBuffer).

The buffer holds each key's latest update. A key keeps the place it took when
first buffered (its buffer time: that update's timestamp) however often it is
updated after; the held update is the latest one, with its own timestamp,
its old value and, kept from the first, the value before the key was buffered
(its prior value). Stream time is the largest timestamp of the updates the node
received. After each update, every key whose buffer time is at or before
stream time minus the wait is emitted and forgotten, in the buffer's order (by
buffer time, then by serialized key, unsigned bytes), with its latest update's
timestamp and headers; tombstones are emitted too (only `until_window_closes`
may drop them).

A bounded buffer (`BufferConfig.max_records` / `max_bytes`) that is over its
bound after that either emits from the front until it is not (emit early), or
stops the task (`StreamsException`, shut down when full). Bytes count as Kafka
Streams' buffer counts them: per key 8 (its time) + the serialized key + the
prior, old (unless it is the prior one's, from the same update) and new values
+ the record metadata (timestamp 8, offset 8, topic name, partition 4, each
header's name and value).

The buffer is a key-value store, `KTABLE-SUPPRESS-STATE-STORE-...`, logged to
its changelog, so a task restores what it held. Each entry is one changelog
record keyed by the serialized key (a deletion when it is emitted) whose value
is this module's layout (not Kafka's: its buffer's changelog cannot be shared):

    {int64 buffer time}{int64 timestamp}{value prior}{value old}{value new}
    value: {int32 length, -1 for null}{bytes}, big-endian; the inner serde is the
    table's value serde.

Headers and the source record's topic and offset are not logged: an update
restored from the changelog is emitted without headers. As in Kafka Streams the
node's stream time starts over after a restore (from the next update).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from typing import Any

from topicflow.dsl.options import BufferConfig
from topicflow.errors import StreamsException
from topicflow.serdes import Serde, wrapping_serde
from topicflow.topology.nodes import (
    Forward,
    NodeFactory,
    ProcessorNode,
    SourceNode,
    TaskContext,
    forward_to,
)
from topicflow.topology.topology import Topology

_TIMES = struct.Struct(">qq")
_LENGTH = struct.Struct(">i")
_NULL_LENGTH = _LENGTH.pack(-1)

# key -> [buffer time, timestamp, prior value, old value, new value, headers, size]
_BUFFER_TIME, _TIMESTAMP, _PRIOR, _OLD, _NEW, _HEADERS, _SIZE = range(7)


def buffer_entry_serde(inner: Serde[Any]) -> Serde[Any]:
    """(buffer time, timestamp, prior, old, new) in the changelog layout above."""
    serialize, deserialize = inner.serialize, inner.deserialize

    def value_bytes(value: Any) -> bytes:
        if value is None:
            return _NULL_LENGTH
        data = serialize(value) or b""
        return _LENGTH.pack(len(data)) + data

    def to_bytes(entry: Any) -> bytes | None:
        if entry is None:
            return None
        buffer_time, timestamp, prior, old, new = entry
        return (
            _TIMES.pack(buffer_time, timestamp)
            + value_bytes(prior)
            + value_bytes(old)
            + value_bytes(new)
        )

    def from_bytes(data: bytes | None) -> Any:
        if data is None:
            return None
        buffer_time, timestamp = _TIMES.unpack_from(data)
        position = _TIMES.size
        values: list[Any] = []
        for _ in range(3):
            (size,) = _LENGTH.unpack_from(data, position)
            position += _LENGTH.size
            if size < 0:
                values.append(None)
            else:
                values.append(deserialize(data[position : position + size]))
                position += size
        return buffer_time, timestamp, values[0], values[1], values[2]

    return Serde(f"SuppressionBuffer({inner.name})", to_bytes, from_bytes)


def buffer_entry_serde_of(inner: Serde[Any] | None) -> Serde[Any]:
    """The buffer store's value serde, around `inner` or the default value serde."""
    if inner is not None:
        return buffer_entry_serde(inner)
    return wrapping_serde("SuppressionBuffer(default)", buffer_entry_serde)


def _value_size(data: bytes, position: int) -> tuple[int, int]:
    """(length of the value at `position` of an entry's bytes, 0 if null; next position)."""
    (size,) = _LENGTH.unpack_from(data, position)
    if size < 0:
        return 0, position + _LENGTH.size
    return size, position + _LENGTH.size + size


def source_topic_of(topology: Topology, node_name: str) -> Callable[[str], str] | None:
    """The topic (by application id: an internal one is prefixed) that the records
    reaching `node_name` come from, when there is one only."""
    nodes = topology.nodes
    topics: set[str] = set()
    pending, seen = [node_name], set()
    while pending:
        node = nodes[pending.pop()]
        if isinstance(node, SourceNode):
            topics.update(node.topics)
        elif isinstance(node, ProcessorNode):
            pending.extend(parent for parent in node.parents if parent not in seen)
            seen.update(node.parents)
    if len(topics) != 1:
        return None
    (topic,) = topics
    internal = topology.internal_topics.get(topic)
    if internal is None:
        return lambda _application_id: topic
    return internal.full_name


def suppress_time_limit_node(
    node_name: str,
    store_name: str,
    wait_ms: int,
    buffer_config: BufferConfig,
    read_from: Callable[[str], str] | None,
) -> NodeFactory:
    """Kafka Streams' KTableSuppressProcessor, until_time_limit (see the module's doc).
    `read_from`: `source_topic_of` the node (what its byte count takes as topic)."""
    record_limit = buffer_config.record_limit
    byte_limit = buffer_config.byte_limit
    emit_when_full = buffer_config.emit_when_full

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        rc = task.record_context
        forward = forward_to(children)
        store = task.get_state_store(store_name)
        put = store.put
        serialize_key = store.serialize_key
        entries: dict[Any, list[Any]] = {}
        order: list[tuple[int, bytes, Any]] = []  # heap of (buffer time, key bytes, key)
        counted = [0]  # the buffer's bytes, when bounded by bytes
        source_topic = "" if read_from is None else read_from(task.application_id)
        stream_time = -1
        restored = False

        def entry_size(key_bytes: bytes, entry: list[Any], first: bool) -> int:
            """Kafka Streams' computeRecordSize of a buffered update."""
            data = store.serialize_value(tuple(entry[:5])) or b""
            prior, position = _value_size(data, _TIMES.size)
            old, position = _value_size(data, position)
            new, _ = _value_size(data, position)
            # Kafka counts the topic of the record behind the update, which a cache
            # flush here does not carry: then the one topic the table reads from.
            topic = rc.topic() or source_topic
            size = 8 + len(key_bytes) + prior + (0 if first else old) + new
            size += 8 + 8 + len(topic) + 4
            for name, value in entry[_HEADERS] or ():
                size += len(name) + (len(value) if value is not None else 0)
            return size

        def restore_index() -> None:
            """What a previous owner of the task buffered, from the store (restored)."""
            for key, (buffer_time, timestamp, prior, old, new) in store.all():
                entry = [buffer_time, timestamp, prior, old, new, None, 0]
                key_bytes = serialize_key(key) or b""
                if byte_limit is not None:
                    entry[_SIZE] = entry_size(key_bytes, entry, prior is old)
                    counted[0] += entry[_SIZE]
                entries[key] = entry
                heapq.heappush(order, (buffer_time, key_bytes, key))

        def emit_first() -> None:
            """Emit, and forget, the key at the front of the buffer."""
            _time, _key_bytes, key = heapq.heappop(order)
            entry = entries.pop(key)
            counted[0] -= entry[_SIZE]
            put(key, None)
            saved = rc.timestamp, rc.headers, rc.origin, rc.old_value
            rc.timestamp, rc.headers = entry[_TIMESTAMP], entry[_HEADERS]
            rc.origin, rc.old_value = None, entry[_OLD]
            try:
                forward(key, entry[_NEW])
            finally:
                rc.timestamp, rc.headers, rc.origin, rc.old_value = saved

        def over_capacity() -> bool:
            return (record_limit is not None and len(entries) > record_limit) or (
                byte_limit is not None and counted[0] > byte_limit
            )

        def suppress(key: Any, value: Any) -> None:
            nonlocal stream_time, restored
            if not restored:
                restored = True
                restore_index()
            timestamp = rc.timestamp
            stream_time = max(stream_time, timestamp)
            old = rc.old_value
            entry = entries.get(key)
            first = entry is None
            if entry is None:
                # Its place in the buffer: this update's time, kept until emitted.
                entry = [timestamp, timestamp, old, old, value, rc.headers, 0]
                entries[key] = entry
                key_bytes = serialize_key(key) or b""
                heapq.heappush(order, (timestamp, key_bytes, key))
            else:
                entry[_TIMESTAMP], entry[_OLD], entry[_NEW] = timestamp, old, value
                entry[_HEADERS] = rc.headers
                key_bytes = b"" if byte_limit is None else serialize_key(key) or b""
            put(key, (entry[0], timestamp, entry[_PRIOR], old, value))
            if byte_limit is not None:
                counted[0] -= entry[_SIZE]
                entry[_SIZE] = entry_size(key_bytes, entry, first)
                counted[0] += entry[_SIZE]
            expiry = stream_time - wait_ms
            while order and order[0][0] <= expiry:
                emit_first()
            if over_capacity():
                if not emit_when_full:
                    raise StreamsException(
                        f"{node_name} buffer exceeded its max capacity. Currently "
                        f"[{len(entries)}/{record_limit}] records and "
                        f"[{counted[0]}/{byte_limit}] bytes."
                    )
                while order and over_capacity():
                    emit_first()

        return suppress

    return factory
