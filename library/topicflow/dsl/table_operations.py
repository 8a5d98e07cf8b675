"""The nodes of table operations: Kafka Streams' KTableSource, KTableFilter and
KTableMapValues.

A table's updates travel as records whose value is the new value (null deletes
the key); a node whose table was asked to send old values also reads and passes
on each update's old value in the record context (`topicflow.dsl.changes`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.dsl.changes import OldValues, forward_at
from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to


def table_filter_node(
    predicate: Callable[[Any, Any], bool], keep_if: bool, old_values: OldValues
) -> NodeFactory:
    """Kafka Streams' KTableFilter: a value that fails the predicate becomes a tombstone.

    With old values, an update whose new and old values both fail (or are null)
    changes nothing downstream and is dropped; the old value passed on is the
    filtered one.
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if not old_values.sent:

            def table_filter(key: Any, value: Any) -> None:
                if value is None or bool(predicate(key, value)) == keep_if:
                    forward(key, value)
                else:
                    forward(key, None)

            return table_filter
        rc = task.record_context

        def table_filter_with_old(key: Any, value: Any) -> None:
            old_in = rc.old_value
            if value is not None and bool(predicate(key, value)) != keep_if:
                value = None
            old = old_in
            if old is not None and bool(predicate(key, old)) != keep_if:
                old = None
            if value is None and old is None:
                return
            rc.old_value = old
            try:
                forward(key, value)
            finally:
                rc.old_value = old_in

        return table_filter_with_old

    return factory


def table_map_values_node(
    mapper: Callable[..., Any], with_key: bool, old_values: OldValues
) -> NodeFactory:
    """Kafka Streams' KTableMapValues: a tombstone stays a tombstone; with old values,
    the old value is mapped as well."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def mapped(key: Any, value: Any) -> Any:
            if value is None:
                return None
            return mapper(key, value) if with_key else mapper(value)

        if not old_values.sent:

            def table_map_values(key: Any, value: Any) -> None:
                forward(key, mapped(key, value))

            return table_map_values
        rc = task.record_context

        def table_map_values_with_old(key: Any, value: Any) -> None:
            old_in = rc.old_value
            rc.old_value = mapped(key, old_in)
            try:
                forward(key, mapped(key, value))
            finally:
                rc.old_value = old_in

        return table_map_values_with_old

    return factory


class SourceStore:
    """The store of a `builder.table` (None: not materialized), a cell of the graph: a
    join that must look the table's values up materializes it after the table
    was made, and the source node reads the cell when a task builds it."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name


class TableSource:
    """A table read from records (`builder.table`, `KStream.to_table`): the store name
    generated for it, its store cell, and the serdes of its records."""

    __slots__ = ("generated_store", "key_serde", "old_values", "store", "value_serde")

    def __init__(
        self,
        generated_store: str,
        store: SourceStore,
        key_serde: Any,
        value_serde: Any,
        old_values: OldValues,
    ) -> None:
        self.generated_store = generated_store
        self.store = store
        self.key_serde = key_serde
        self.value_serde = value_serde
        # The source node's sendOldValues, which counts once the table is materialized.
        self.old_values = old_values


def table_source_node(source_store: SourceStore, old_values: OldValues | None) -> NodeFactory:
    """`builder.table(topic)`: each record is the new value of its key (null deletes it).

    As Kafka Streams' KTableSource: a record with a null key is dropped, whether
    the table is materialized or not. A materialized table forwards what its
    store writes through (at once, or at a cache flush), with the value it
    replaced when old values are asked for.
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        metrics = task.metrics
        forward = forward_to(children)
        store_name = source_store.name
        if store_name is None:

            def table_source(key: Any, value: Any) -> None:
                if key is None:
                    metrics.dropped_records += 1
                    return
                forward(key, value)

            return table_source
        store = task.get_state_store(store_name)
        store.set_flush_listener(forward_at(task.record_context, forward))
        send_old = store.send_old_values = old_values is not None and old_values.sent
        get, put = store.get, store.put

        def materialized_source(key: Any, value: Any) -> None:
            if key is None:
                metrics.dropped_records += 1
                return
            put(key, value, None, get(key) if send_old else None)

        return materialized_source

    return factory
