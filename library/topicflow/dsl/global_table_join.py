"""The stream-global table join: Kafka Streams' KStreamGlobalKTableJoin.

Each stream record looks up the key `key_selector(key, value)` derives from it
in the global table, as the table stands when the record arrives (table
updates never emit by themselves). Kafka Streams 4.1's rules, which the
conformance suite pins:

- a record with a null value is dropped (counted), in both joins;
- a record whose selected key is null is dropped by `join`; `left_join` joins
  it with no table value (the record's own key plays no part);
- `join` emits only when the table has the selected key; `left_join` always,
  with None for the table's value when it has not;
- the result keeps the stream record's key and timestamp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to

# (stream key, stream value) -> the global table's key to look up.
KeySelector = Callable[[Any, Any], Any]


def global_table_join_node(
    store_name: str,
    key_selector: KeySelector,
    joiner: Callable[..., Any],
    with_key: bool,
    left: bool,
) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        metrics = task.metrics
        get = task.get_state_store(store_name).get

        def global_table_join(key: Any, value: Any) -> None:
            table_key = key_selector(key, value)
            if value is None or (table_key is None and not left):
                metrics.dropped_records += 1
                return
            other = None if table_key is None else get(table_key)
            if other is None and not left:
                return
            forward(key, joiner(key, value, other) if with_key else joiner(value, other))

        return global_table_join

    return factory
