"""The nodes of foreign-key table joins (KIP-213): Kafka Streams' SubscriptionSend,
SubscriptionReceive, SubscriptionJoin, ForeignTableJoin and ResponseJoin processors.

A table joined on a foreign key extracted from its values meets the other table
in the other table's partitions: each update of the left table sends a
subscription `(foreign key -> primary key, instruction, hash of the new value)`
through the topic `<app>-...-SUBSCRIPTION-REGISTRATION-<n>-topic`, partitioned by
the foreign key. There the subscription is kept in a store keyed by (foreign
key, primary key), and answered with the foreign table's value; each update of
the foreign table answers every subscription to its key. Answers travel back
through `<app>-...-SUBSCRIPTION-RESPONSE-<n>-topic` to the primary key's
partition, where a response whose hash is not that of the left table's current
value is stale (the value changed since) and is dropped; the others are joined.

What travels and what is stored are bytes laid out here (the keys serialized by
their serdes, or the configured defaults): a subscription is
`version, instruction, flags, [hash], primary partition, primary key`; a response
`version, flags, [hash], primary partition, [foreign value]`; a subscription's
store key is Kafka Streams' CombinedKey, `len(foreign key), foreign key, primary
key`. The hash is BLAKE2b-128 of the serialized value (Kafka Streams uses
Murmur3-128; only equality matters).

Kafka Streams 4.1's instructions, which the conformance suite pins: an inner join
sends nothing for a value without a foreign key; a left join sends one with a
null foreign key, answered at once with no foreign value.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from hashlib import blake2b
from typing import Any
from weakref import WeakKeyDictionary

from topicflow.dsl.table_joins import ValueGetter
from topicflow.serdes import Serde
from topicflow.topology.nodes import (
    Forward,
    NodeFactory,
    StreamPartitioner,
    TaskContext,
    forward_to,
)

# Kafka Streams' names of the nodes, topics and store (KTableImpl).
REGISTRATION = "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION"
STORE = "KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE"
PROCESSOR = "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR"
RESPONSE = "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE"
RESOLVER = "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR"
OUTPUT = "KTABLE-FK-JOIN-OUTPUT"

# Kafka Streams' SubscriptionWrapper.Instruction.
DELETE_KEY_NO_PROPAGATE = 0  # forget the subscription, answer nothing
DELETE_KEY_AND_PROPAGATE = 1  # forget it, answer "no foreign value"
PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE = 2  # keep it, answer whatever the foreign table has
PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE = 3  # keep it, answer only if the foreign table has a value

_SUBSCRIPTION_VERSION = 1
_RESPONSE_VERSION = 0
_HAS_HASH = 1
_HAS_VALUE = 2
_PARTITION = struct.Struct(">i")
_LENGTH = struct.Struct(">I")

# (key, value) -> the foreign key (Kafka Streams 4's ForeignKeyExtractor).
ForeignKeyExtractor = Callable[[Any, Any], Any]


def value_hash(serialized: bytes | None) -> bytes | None:
    return None if serialized is None else blake2b(serialized, digest_size=16).digest()


# -- wire formats ---------------------------------------------------------------------


def subscription_bytes(
    instruction: int, hash_: bytes | None, partition: int | None, primary_key: bytes
) -> bytes:
    flags = 0 if hash_ is None else _HAS_HASH
    return b"".join(
        (
            bytes((_SUBSCRIPTION_VERSION, instruction, flags)),
            hash_ or b"",
            _PARTITION.pack(-1 if partition is None else partition),
            primary_key,
        )
    )


def parse_subscription(data: bytes) -> tuple[int, bytes | None, int, bytes]:
    """(instruction, hash, primary partition or -1, primary key bytes)."""
    instruction, flags = data[1], data[2]
    at = 3
    hash_ = None
    if flags & _HAS_HASH:
        hash_ = data[at : at + 16]
        at += 16
    (partition,) = _PARTITION.unpack_from(data, at)
    return instruction, hash_, partition, data[at + 4 :]


def response_bytes(hash_: bytes | None, foreign_value: bytes | None, partition: int) -> bytes:
    # As Kafka Streams' SubscriptionResponseWrapperSerde: a foreign value that serializes
    # to no bytes (an empty string) arrives as no value at all.
    flags = (0 if hash_ is None else _HAS_HASH) | (_HAS_VALUE if foreign_value else 0)
    return b"".join(
        (
            bytes((_RESPONSE_VERSION, flags)),
            hash_ or b"",
            _PARTITION.pack(partition),
            foreign_value or b"",
        )
    )


def parse_response(data: bytes) -> tuple[bytes | None, bytes | None]:
    """(hash of the left value it answers, serialized foreign value)."""
    flags = data[1]
    at = 2
    hash_ = None
    if flags & _HAS_HASH:
        hash_ = data[at : at + 16]
        at += 16
    return hash_, data[at + 4 :] if flags & _HAS_VALUE else None


def response_partitioner(topic: str, key: Any, value: Any, partitions: int) -> int:
    """A response goes back to the partition of the left record it answers (-1: unknown,
    partition by key)."""
    flags = value[1]
    (partition,) = _PARTITION.unpack_from(value, 2 + (16 if flags & _HAS_HASH else 0))
    return int(partition)


def subscription_partitioner(other_partitioner: StreamPartitioner) -> StreamPartitioner:
    """TableJoined's other partitioner, which sees the foreign key only (Kafka's passes
    no value)."""

    def partition(topic: str, key: Any, value: Any, partitions: int) -> int:
        return other_partitioner(topic, key, None, partitions)

    return partition


def _prefix(foreign_key: bytes) -> bytes:
    return _LENGTH.pack(len(foreign_key)) + foreign_key


# -- the subscription store's index of keys by foreign key ---------------------------


class _Subscriptions:
    """The store keys of the subscriptions of each foreign key: Kafka Streams scans its
    byte-ordered store by prefix; this index does the same for stores without ranges.

    Built from the store at first use (after restore), then kept by the writes."""

    __slots__ = ("_by_prefix",)

    def __init__(self, store: Any) -> None:
        self._by_prefix: dict[bytes, set[bytes]] = {}
        for key, _value in store.all():
            self.add(key)

    def add(self, store_key: bytes) -> None:
        (length,) = _LENGTH.unpack_from(store_key)
        prefix = store_key[: 4 + length]
        keys = self._by_prefix.get(prefix)
        if keys is None:
            keys = self._by_prefix[prefix] = set()
        keys.add(store_key)

    def remove(self, store_key: bytes) -> None:
        (length,) = _LENGTH.unpack_from(store_key)
        prefix = store_key[: 4 + length]
        keys = self._by_prefix.get(prefix)
        if keys is not None:
            keys.discard(store_key)
            if not keys:
                del self._by_prefix[prefix]

    def of(self, prefix: bytes) -> Iterator[bytes]:
        """The store keys with `prefix`, in the store's (byte) order."""
        keys = self._by_prefix.get(prefix)
        return iter(sorted(keys)) if keys else iter(())


# One index per task instance and store, shared by the two nodes that use the store.
# Per task, not per store: a store kept warm (a standby's) is written by restore,
# which the index does not see; the task that takes it over builds its own.
_INDEXES: WeakKeyDictionary[Any, dict[str, _Subscriptions]] = WeakKeyDictionary()


def _subscriptions(task: TaskContext, store_name: str) -> Callable[[], _Subscriptions]:
    store = task.get_state_store(store_name)

    def index() -> _Subscriptions:
        of_task = _INDEXES.get(task)
        if of_task is None:
            of_task = _INDEXES[task] = {}
        found = of_task.get(store_name)
        if found is None:
            found = of_task[store_name] = _Subscriptions(store)
        return found

    return index


# -- the left table's side ------------------------------------------------------------


def subscription_send_node(
    extract: ForeignKeyExtractor,
    left: bool,
    foreign_key_serde: Serde[Any] | None,
    key_serde: Serde[Any] | None,
    value_serde: Serde[Any] | None,
) -> NodeFactory:
    """Kafka Streams' SubscriptionSendProcessor: each update of the left table (with its
    old value) as the subscriptions it changes, keyed by foreign key."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        rc = task.record_context
        metrics = task.metrics
        serialize_fk = (foreign_key_serde or task.default_key_serde).serialize
        serialize_key = (key_serde or task.default_key_serde).serialize
        serialize_value = (value_serde or task.default_value_serde).serialize

        # The left record's partition, where the response must come back: the task's
        # (all its input partitions have its number), also when a cache flush sends.
        partition = int(task.task_id.rsplit("_", 1)[1])

        def subscribe(key: Any, value: Any, foreign_key: Any, instruction: int) -> None:
            hash_ = None if value is None else value_hash(serialize_value(value))
            primary = serialize_key(key) or b""
            forward(foreign_key, subscription_bytes(instruction, hash_, partition, primary))

        def send(key: Any, value: Any) -> None:
            old = rc.old_value
            if old is not None:
                old_fk = extract(key, old)
                new_fk = None if value is None else extract(key, value)
                if left:
                    if old_fk is not None and _bytes(serialize_fk, new_fk) != serialize_fk(old_fk):
                        subscribe(key, value, old_fk, DELETE_KEY_NO_PROPAGATE)
                    subscribe(key, value, new_fk, PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE)
                elif old_fk is None and new_fk is None:
                    metrics.dropped_records += 1
                elif old_fk is None:
                    subscribe(key, value, new_fk, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE)
                elif new_fk is None:
                    subscribe(key, value, old_fk, DELETE_KEY_AND_PROPAGATE)
                elif serialize_fk(new_fk) != serialize_fk(old_fk):
                    subscribe(key, value, old_fk, DELETE_KEY_NO_PROPAGATE)
                    subscribe(key, value, new_fk, PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE)
                else:
                    subscribe(key, value, new_fk, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE)
            elif value is not None:
                new_fk = extract(key, value)
                if left:
                    subscribe(key, value, new_fk, PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE)
                elif new_fk is None:
                    metrics.dropped_records += 1
                else:
                    subscribe(key, value, new_fk, PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE)

        return send

    return factory


def _bytes(serialize: Callable[[Any], bytes | None], key: Any) -> bytes | None:
    return None if key is None else serialize(key)


def response_join_node(
    left_values: ValueGetter,
    joiner: Callable[[Any, Any], Any],
    left: bool,
    value_serde: Serde[Any] | None,
    foreign_value_serde: Serde[Any] | None,
) -> NodeFactory:
    """Kafka Streams' ResponseJoinProcessor: a response for the left table's current value
    (same hash) is joined; a stale one is dropped."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        get = left_values.connect(task)
        serialize_value = (value_serde or task.default_value_serde).serialize
        deserialize_foreign = (foreign_value_serde or task.default_value_serde).deserialize

        def resolve(key: Any, response: bytes) -> None:
            hash_, foreign_bytes = parse_response(response)
            entry = get(key)
            current = None if entry is None else entry[0]
            if hash_ != (None if current is None else value_hash(serialize_value(current))):
                metrics.dropped_records += 1
                return
            if foreign_bytes is None and (not left or current is None):
                forward(key, None)
                return
            foreign = None if foreign_bytes is None else deserialize_foreign(foreign_bytes)
            forward(key, joiner(current, foreign))

        return resolve

    return factory


# -- the foreign table's side ---------------------------------------------------------


def subscription_receive_node(store_name: str, foreign_key_serde: Serde[Any] | None) -> NodeFactory:
    """Kafka Streams' SubscriptionReceiveProcessor: keeps or forgets each subscription in
    the store, then hands it on keyed by (foreign key, primary key)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        rc = task.record_context
        store = task.get_state_store(store_name)
        index = _subscriptions(task, store_name)
        serialize_fk = (foreign_key_serde or task.default_key_serde).serialize

        def receive(foreign_key: Any, subscription: bytes) -> None:
            instruction, _hash, _partition, primary = parse_subscription(subscription)
            if foreign_key is None:
                # A left join's value without a foreign key: answered, never stored.
                if instruction != PROPAGATE_NULL_IF_NO_FK_VAL_AVAILABLE:
                    metrics.dropped_records += 1
                    return
                forward((None, primary), subscription)
                return
            store_key = _prefix(serialize_fk(foreign_key) or b"") + primary
            if instruction in (DELETE_KEY_AND_PROPAGATE, DELETE_KEY_NO_PROPAGATE):
                store.put(store_key, None)
                index().remove(store_key)
            else:
                store.put(store_key, subscription, rc.timestamp)
                index().add(store_key)
            forward((foreign_key, primary), subscription)

        return receive

    return factory


def subscription_join_node(
    foreign_values: ValueGetter, foreign_value_serde: Serde[Any] | None
) -> NodeFactory:
    """Kafka Streams' SubscriptionJoinProcessor: answers a subscription with the foreign
    table's value, at the later timestamp of both."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        rc = task.record_context
        get = foreign_values.connect(task)
        serialize_foreign = (foreign_value_serde or task.default_value_serde).serialize

        def join(combined_key: tuple[Any, bytes], subscription: bytes) -> None:
            foreign_key, primary = combined_key
            instruction, hash_, partition, _primary = parse_subscription(subscription)
            if instruction == DELETE_KEY_NO_PROPAGATE:
                return
            found = None if foreign_key is None else get(foreign_key)
            if found is None and instruction == PROPAGATE_ONLY_IF_FK_VAL_AVAILABLE:
                return
            foreign = None
            timestamp = rc.timestamp
            if found is not None:
                timestamp = max(timestamp, found[1])
                if instruction != DELETE_KEY_AND_PROPAGATE:
                    foreign = serialize_foreign(found[0])
            saved = rc.timestamp
            rc.timestamp = timestamp
            try:
                forward(primary, response_bytes(hash_, foreign, partition))
            finally:
                rc.timestamp = saved

        return join

    return factory


def foreign_table_join_node(
    store_name: str,
    foreign_key_serde: Serde[Any] | None,
    foreign_value_serde: Serde[Any] | None,
) -> NodeFactory:
    """Kafka Streams' ForeignTableJoinProcessor: an update of the foreign table answers
    every subscription to its key, in primary-key byte order."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        store = task.get_state_store(store_name)
        get = store.get_with_timestamp
        index = _subscriptions(task, store_name)
        serialize_fk = (foreign_key_serde or task.default_key_serde).serialize
        serialize_foreign = (foreign_value_serde or task.default_value_serde).serialize

        def answer(foreign_key: Any, value: Any) -> None:
            if foreign_key is None:
                metrics.dropped_records += 1
                return
            prefix = _prefix(serialize_fk(foreign_key) or b"")
            foreign = None if value is None else serialize_foreign(value)
            for store_key in index().of(prefix):
                entry = get(store_key)
                if entry is None:
                    continue
                _instruction, hash_, partition, _primary = parse_subscription(entry[0])
                forward(store_key[len(prefix) :], response_bytes(hash_, foreign, partition))

        return answer

    return factory
