"""GlobalKTable: a table every instance holds whole.

All partitions of its topic, loaded before any stream task processes a
record and kept up to date by the instance's global stream thread
(runtime/global_stream_thread.py). A stream joins it on any key a selector
derives from each record, with no repartitioning: every instance has every
key (dsl/global_table_join.py).
"""

from __future__ import annotations


class GlobalKTable:
    """A table replicated whole to every instance; made by `builder.global_table(topic)`.

    Joined from a stream with `stream.join(table, key_selector, joiner)`.
    """

    def __init__(self, store_name: str, queryable_store_name: str | None) -> None:
        # As Kafka Streams': no operations of its own, only what a join needs.
        # The store the join reads (named, or generated: a global table always has one).
        self.store_name = store_name
        # The store's name when `Materialized` named it (Kafka's queryableStoreName()).
        self.queryable_store_name = queryable_store_name

    def __repr__(self) -> str:
        return f"GlobalKTable({self.store_name!r})"
