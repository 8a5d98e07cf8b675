"""How a table's updates travel downstream: each with its own timestamp, and, where
a table below asked for it, the value it replaces (Kafka Streams' `Change`).

Kafka Streams forwards `Change(new, old)` between table processors. Here the
new value is the record's value and the old one rides in the record context
(`RecordContext.old_value`) for the nodes that read it, so the table nodes that
do not ask for old values (most) pay nothing for them.

Whether a table sends old values is Kafka's `sendOldValues`, settled while the
topology is built: a `KTable.filter` asks its parent (`enableSendingOldValues`),
which asks its own, up to the table that owns a store (an aggregation, a
materialized `builder.table`), the only kind that knows the old value. The
answer is an `OldValues` cell that node factories read when a task builds them,
after the whole topology is known.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from topicflow.topology.nodes import Forward, RecordContext


class OldValues:
    """Whether a table's updates carry their old values (Kafka's sendOldValues)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


class EmitStrategy:
    """When a windowed aggregation emits (Kafka Streams' EmitStrategy): on every update
    (the default), or once per window when it closes, after
    `suppress(Suppressed.until_window_closes())` on its table. Like OldValues, a
    cell of the graph that the table sets and the node reads when a task builds it."""

    __slots__ = ("on_window_close",)

    def __init__(self) -> None:
        self.on_window_close = False


class ForwardUpdate(Protocol):
    """Forwards one table update: key, new value, its timestamp, and its old value."""

    def __call__(self, key: Any, value: Any, timestamp: int, old: Any = None) -> None: ...


def forward_at(rc: RecordContext, forward: Forward) -> ForwardUpdate:
    """Forward a table update with its own timestamp and old value, whenever the store
    lets it through (at once, or when the cache flushes)."""

    def forward_update(key: Any, value: Any, timestamp: int, old: Any = None) -> None:
        # A cache flush's output derives from many records, not the one in flight:
        # it carries no origin.
        saved = rc.timestamp, rc.headers, rc.origin, rc.old_value
        rc.timestamp, rc.headers, rc.origin, rc.old_value = timestamp, None, None, old
        try:
            forward(key, value)
        finally:
            rc.timestamp, rc.headers, rc.origin, rc.old_value = saved

    return forward_update


def forward_each_at(
    rc: RecordContext, forward: Forward, results: Iterable[tuple[Any, Any, int]]
) -> None:
    """Forward (key, value) results, each under its own timestamp (final results emitted
    on window close), and give the record context back as it was."""
    saved = rc.timestamp, rc.headers, rc.origin, rc.old_value
    rc.origin, rc.old_value = None, None
    try:
        for key, value, timestamp in results:
            rc.timestamp, rc.headers = timestamp, None
            forward(key, value)
    finally:
        rc.timestamp, rc.headers, rc.origin, rc.old_value = saved
