"""The nodes of table-table joins: Kafka Streams' KTableKTableInnerJoin, LeftJoin,
RightJoin and OuterJoin, and the KTableKTableJoinMerger that unites their outputs.

A join of two tables is two nodes, one below each table, that look each update
of their table up in the other (through the other's value getter) and forward
the joined update to one merge node, the join table's node. The result's
timestamp is the later of the update's and the looked-up value's. Kafka Streams
4.1's rules, which the conformance suite pins (`this` is the table `join` was
called on):

- inner: an update joins only when the other table has the key; a deletion
  then forwards a tombstone;
- left: an update of `this` always joins (None for a missing other value),
  unless it is a deletion of a key `this` did not have; an update of the other
  table joins only when `this` has the key, a deletion as `joiner(this, None)`;
- outer: an update joins when either side has a value.

Old values (Kafka's `Change.oldValue`) are joined too when a table below asks
for them; a left join asks `this` for its old values, an outer join both
tables, to tell a deletion of a missing key from one of a present one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from topicflow.dsl.changes import OldValues, forward_at
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

# (value, timestamp) of a key in a table, as Kafka Streams' ValueAndTimestamp.
Entry = tuple[Any, ...]
# key -> the table's entry for it, or None.
EntryGetter = Callable[[Any], Entry | None]
# Kafka's ValueJoiner: (this table's value, the other table's value) -> result.
ValueJoiner = Callable[[Any, Any], Any]
# The processor of one side: Kafka Streams' KTableKTable{Inner,Left,Right,Outer}Join.
JoinKind = Literal["inner", "left", "right", "outer"]
# Kafka Streams' ValueAndTimestamp's timestamp of a missing value.
UNKNOWN = -1


class ValueGetter:
    """Kafka Streams' KTableValueGetterSupplier: the stores a table's values are read
    from, and how a task reads a key's entry there (`connect(task)`)."""

    __slots__ = ("connect", "stores")

    def __init__(self, stores: list[str], connect: Callable[[TaskContext], EntryGetter]) -> None:
        self.stores = stores
        self.connect = connect


def store_value_getter(store: str, compute: Callable[[Any, Any], Any] | None) -> ValueGetter:
    """The entries of a table kept in (timestamped) `store`, through `compute` for a
    table derived from it by filter or map_values."""

    def connect(task: TaskContext) -> EntryGetter:
        get = task.get_state_store(store).get_with_timestamp
        if compute is None:
            return get  # type: ignore[no-any-return]
        return _computed(get, compute)

    return ValueGetter([store], connect)


def derived_value_getter(parent: ValueGetter, compute: Callable[[Any, Any], Any]) -> ValueGetter:
    """The entries of a table derived by filter or map_values from a table read through
    `parent`: the value computed, the timestamp kept (KTableFilter, KTableMapValues)."""
    return ValueGetter(parent.stores, lambda task: _computed(parent.connect(task), compute))


def _computed(get: EntryGetter, compute: Callable[[Any, Any], Any]) -> EntryGetter:
    def computed(key: Any) -> Entry | None:
        entry = get(key)
        if entry is None:
            return None
        value = compute(key, entry[0])
        return None if value is None else (value, entry[1])

    return computed


def join_value_getter(
    kind: JoinKind, this: ValueGetter, other: ValueGetter, joiner: ValueJoiner
) -> ValueGetter:
    """The entries of a join table that is not materialized: computed from both tables'
    (the join processors' `view()` in Kafka Streams)."""

    def connect(task: TaskContext) -> EntryGetter:
        get_this, get_other = this.connect(task), other.connect(task)

        def inner(key: Any) -> Entry | None:
            entry = get_this(key)
            if entry is None:
                return None
            found = get_other(key)
            if found is None:
                return None
            return joiner(entry[0], found[0]), max(entry[1], found[1])

        def left(key: Any) -> Entry | None:
            entry = get_this(key)
            if entry is None:
                return None
            found = get_other(key)
            if found is None:
                return joiner(entry[0], None), entry[1]
            return joiner(entry[0], found[0]), max(entry[1], found[1])

        def outer(key: Any) -> Entry | None:
            entry, found = get_this(key), get_other(key)
            if entry is None and found is None:
                return None
            return (
                joiner(None if entry is None else entry[0], None if found is None else found[0]),
                max(UNKNOWN if entry is None else entry[1], UNKNOWN if found is None else found[1]),
            )

        return {"inner": inner, "left": left, "outer": outer}[kind]

    stores = list(dict.fromkeys(this.stores + other.stores))
    return ValueGetter(stores, connect)


def table_join_node(
    kind: JoinKind, other: ValueGetter, joiner: ValueJoiner, old_values: OldValues
) -> NodeFactory:
    """One side of a table-table join: each update of this side's table, looked up in
    the other table. `joiner` takes this side's value first (the other side of a join
    is given the reversed joiner)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        rc = task.record_context
        get = other.connect(task)
        send_old = old_values.sent

        def emit(key: Any, value: Any, timestamp: int, old: Any) -> None:
            # The update keeps its headers and origin; only its time and old value change.
            saved_timestamp, saved_old = rc.timestamp, rc.old_value
            rc.timestamp, rc.old_value = timestamp, old
            try:
                forward(key, value)
            finally:
                rc.timestamp, rc.old_value = saved_timestamp, saved_old

        def inner_join(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            found = get(key)
            if found is None:
                return
            other_value = found[0]
            old = rc.old_value
            emit(
                key,
                None if value is None else joiner(value, other_value),
                max(rc.timestamp, found[1]),
                joiner(old, other_value) if send_old and old is not None else None,
            )

        def left_join(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            old = rc.old_value
            found = get(key)
            if found is None:
                if value is None and old is None:
                    return
                other_value, other_timestamp = None, UNKNOWN
            else:
                other_value, other_timestamp = found[0], found[1]
            emit(
                key,
                None if value is None else joiner(value, other_value),
                max(rc.timestamp, other_timestamp),
                joiner(old, other_value) if send_old and old is not None else None,
            )

        def right_join(key: Any, value: Any) -> None:
            # The other table of a left join: joins whenever the left table has the key,
            # a deletion included (the left value joined with None).
            if key is None:
                metrics.dropped_records += 1
                return
            found = get(key)
            if found is None:
                return
            other_value = found[0]
            emit(
                key,
                joiner(value, other_value),
                max(rc.timestamp, found[1]),
                joiner(rc.old_value, other_value) if send_old else None,
            )

        def outer_join(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            old = rc.old_value
            found = get(key)
            if found is None:
                if value is None and old is None:
                    return
                other_value, timestamp = None, rc.timestamp
            else:
                other_value, timestamp = found[0], max(rc.timestamp, found[1])
            emit(
                key,
                joiner(value, other_value)
                if other_value is not None or value is not None
                else None,
                timestamp,
                joiner(old, other_value)
                if send_old and (other_value is not None or old is not None)
                else None,
            )

        return {
            "inner": inner_join,
            "left": left_join,
            "right": right_join,
            "outer": outer_join,
        }[kind]

    return factory


def table_join_merge_node(store_name: str | None, old_values: OldValues) -> NodeFactory:
    """Kafka Streams' KTableKTableJoinMerger: the join table's node, below both sides.

    Not materialized, it forwards what the sides send (they send old values only
    when asked). Materialized, it writes each update to its store, which forwards
    it (at once, or when the cache flushes, with the stored old value).
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if store_name is None:
            return forward
        rc = task.record_context
        store = task.get_state_store(store_name)
        store.set_flush_listener(forward_at(rc, forward))
        store.send_old_values = old_values.sent
        put = store.put

        def materialized_merge(key: Any, value: Any) -> None:
            put(key, value, rc.timestamp, rc.old_value)

        return materialized_merge

    return factory
