"""The nodes of joins: Kafka Streams' KStreamKTableJoin.

A stream-table join looks each stream record's key up in the table, as the
table stands when the record arrives: table updates never emit by
themselves, and the result keeps the stream record's key and timestamp.
Kafka Streams 4.1's rules for nulls, which the conformance suite pins:

- a record with a null value is dropped (counted), in both joins;
- a record with a null key is dropped by `join`; `left_join` joins it with
  no table value (KIP-962);
- `join` emits only when the table has the key; `left_join` always, with
  None for the table's value when it has not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

if TYPE_CHECKING:
    from topicflow.dsl.table_joins import ValueGetter

# (key, stored value) -> the table's value, for a table derived by filter or map_values.
ValueCompute = Callable[[Any, Any], Any]


def stream_table_join_node(
    table: ValueGetter,
    joiner: Callable[..., Any],
    with_key: bool,
    left: bool,
) -> NodeFactory:
    """`table`: how the task looks the table's values up (its store, through filter or
    map_values, or both stores of a table-table join)."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        get = table.connect(task)

        def stream_table_join(key: Any, value: Any) -> None:
            if value is None or (key is None and not left):
                metrics.dropped_records += 1
                return
            other = None
            if key is not None:
                entry = get(key)
                if entry is None:
                    if not left:
                        return
                else:
                    other = entry[0]
            forward(key, joiner(key, value, other) if with_key else joiner(value, other))

        return stream_table_join

    return factory
