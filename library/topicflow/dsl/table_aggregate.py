"""The nodes of `KTable.group_by(...).count/reduce/aggregate`: Kafka Streams'
KTableRepartitionMap, and KTableAggregate / KTableReduce.

A table's update replaces a value: grouped anew, the old value leaves the group
its old (key, value) selected and the new value joins the group of its new
one. The select node (KTableRepartitionMap) reads each update with its old value
(the table above is made to send them) and writes, to the repartition topic,
Kafka's `Change` pairs of (new, old) under the selected keys:

- both selected under one key: one record `(new, old)` (KIP-904: the aggregate
  subtracts the old, then adds the new, and forwards one result);
- under two keys: `(None, old)` to the old group first, then `(new, None)` to
  the new one;
- a selected pair with a null key or a null value is left out (a tombstone
  selects nothing).

The aggregate node takes the pair: subtract the old value if the group has an
aggregate, then add the new one (from the initializer's value, or for a
reduce from the new value itself, if there is none). The result's timestamp is
the record's, or the stored aggregate's if later. A group whose aggregate the
subtractor makes null is deleted (a tombstone downstream).

On the repartition topic a pair is Kafka Streams' ChangedSerializer layout, so
Java and Python instances read each other's topics (the inner serde writes the
values):

    new only:  {new value bytes}{0x01}
    old only:  {old value bytes}{0x00}
    both:      {varint(len(new value bytes))}{new value bytes}{old value bytes}{0x02}

where varint is Kafka's zig-zag varint (ByteUtils.writeVarint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.dsl.changes import OldValues, forward_at
from topicflow.errors import SerializationError
from topicflow.serdes import Serde, wrapping_serde
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

# selector(key, value) -> (new key, new value), or None to select nothing
Selector = Callable[[Any, Any], Any]
# adder / subtractor(key, value, aggregate) -> new aggregate
TableAggregator = Callable[[Any, Any, Any], Any]

_OLD_ONLY, _NEW_ONLY, _BOTH = b"\x00", b"\x01", b"\x02"


def _write_varint(value: int) -> bytes:
    """Kafka's ByteUtils.writeVarint: zig-zag, then 7 bits a byte, low bits first."""
    zigzag = (value << 1) ^ (value >> 31)
    out = bytearray()
    while zigzag & ~0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _read_varint(data: bytes) -> tuple[int, int]:
    """(value, bytes read) of a zig-zag varint at the start of `data`."""
    raw = shift = position = 0
    while True:
        byte = data[position]
        position += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), position
        shift += 7


def changed_serde(inner: Serde[Any]) -> Serde[Any]:
    """(new, old) pairs in Kafka's ChangedSerializer layout (see the module's doc)."""
    serialize, deserialize = inner.serialize, inner.deserialize

    def to_bytes(change: Any) -> bytes | None:
        if change is None:
            return None
        new, old = change
        new_bytes = None if new is None else serialize(new) or b""
        old_bytes = None if old is None else serialize(old) or b""
        if new_bytes is not None and old_bytes is not None:
            return _write_varint(len(new_bytes)) + new_bytes + old_bytes + _BOTH
        if new_bytes is not None:
            return new_bytes + _NEW_ONLY
        if old_bytes is not None:
            return old_bytes + _OLD_ONLY
        raise SerializationError("a change with neither a new nor an old value")

    def from_bytes(data: bytes | None) -> Any:
        if data is None:
            return None
        flag = data[-1]
        if flag == 1:
            return deserialize(data[:-1]), None
        if flag == 0:
            return None, deserialize(data[:-1])
        if flag != 2:
            raise SerializationError(f"a change encoded with the unknown flag {flag}")
        size, start = _read_varint(data)
        return deserialize(data[start : start + size]), deserialize(data[start + size : -1])

    return Serde(f"Changed({inner.name})", to_bytes, from_bytes)


def change_serde_of(inner: Serde[Any] | None) -> Serde[Any]:
    """The repartition topic's value serde, around `inner` or the default value serde."""
    if inner is not None:
        return changed_serde(inner)
    return wrapping_serde("Changed(default)", changed_serde)


def table_repartition_map_node(selector: Selector) -> NodeFactory:
    """Kafka Streams' KTableRepartitionMap (see the module's doc)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        rc = task.record_context

        def repartition_map(key: Any, value: Any) -> None:
            old = rc.old_value
            new_pair: Any = None if value is None else selector(key, value)
            old_pair: Any = None if old is None else selector(key, old)
            # A pair with a null key or value selects nothing.
            if new_pair is not None and (new_pair[0] is None or new_pair[1] is None):
                new_pair = None
            if old_pair is not None and (old_pair[0] is None or old_pair[1] is None):
                old_pair = None
            if new_pair is not None and old_pair is not None and new_pair[0] == old_pair[0]:
                forward(new_pair[0], (new_pair[1], old_pair[1]))
                return
            if old_pair is not None:
                forward(old_pair[0], (None, old_pair[1]))
            if new_pair is not None:
                forward(new_pair[0], (new_pair[1], None))

        return repartition_map

    return factory


def table_aggregate_node(
    store_name: str,
    initializer: Callable[[], Any],
    adder: TableAggregator,
    subtractor: TableAggregator,
    old_values: OldValues,
) -> NodeFactory:
    """Kafka Streams' KTableAggregate (and KTableReduce, through `reduce_aggregators`)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        rc = task.record_context
        store = task.get_state_store(store_name)
        store.set_flush_listener(forward_at(rc, forward_to(children)))
        send_old = store.send_old_values = old_values.sent
        get, put = store.get_with_timestamp, store.put
        metrics = task.metrics

        def table_aggregate(key: Any, change: Any) -> None:
            # Idempotent state, replaying after a crash: already in the aggregate?
            if (
                store.replay_stamps is not None
                and rc.message is not None
                and store.replayed(key, rc.message.offset())
            ):
                metrics.replayed_updates_skipped += 1
                return
            new, old = change
            entry = get(key)
            if entry is None:
                aggregate, timestamp = None, rc.timestamp
            else:
                aggregate = entry[0]
                timestamp = rc.timestamp if rc.timestamp > entry[1] else entry[1]
            # Subtract from the old group first, then add (KIP-904's order).
            if old is not None and aggregate is not None:
                aggregate = subtractor(key, old, aggregate)
            if new is not None:
                aggregate = adder(key, new, initializer() if aggregate is None else aggregate)
            put(key, aggregate, timestamp, entry[0] if send_old and entry is not None else None)

        return table_aggregate

    return factory


def _no_aggregate() -> Any:
    return None


def reduce_aggregators(
    adder: Callable[[Any, Any], Any], subtractor: Callable[[Any, Any], Any]
) -> tuple[Callable[[], Any], TableAggregator, TableAggregator]:
    """A reduce as an aggregation: a group without an aggregate takes the value itself."""

    def add(_key: Any, value: Any, aggregate: Any) -> Any:
        return value if aggregate is None else adder(aggregate, value)

    def subtract(_key: Any, value: Any, aggregate: Any) -> Any:
        return subtractor(aggregate, value)

    return _no_aggregate, add, subtract


def count_initializer() -> int:
    return 0


def count_adder(_key: Any, _value: Any, aggregate: int) -> int:
    return aggregate + 1


def count_subtractor(_key: Any, _value: Any, aggregate: int) -> int:
    return aggregate - 1
