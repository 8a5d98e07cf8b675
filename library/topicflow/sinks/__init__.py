"""Sinks to external systems: processors that write their batches at every commit.

An upsert sink names a table, its key and value columns, and a function from a
record (key, value, timestamp) to a row, or None to skip the record:

    from topicflow.sinks import PostgresSink, Table, database_url_from_env

    totals = Table("user_totals", keys={"user_id": "text"},
                   values={"total": "bigint", "last_seen": "bigint"})

    def row_of(record: Record[str, int | None]) -> tuple[str, int, int] | None:
        if record.value is None:
            return None  # a tombstone: the row stays
        return (record.key, record.value, record.timestamp)

    variable, url = database_url_from_env(os.environ) or ("", "")
    totals_ktable.to_stream().process(PostgresSink(url, totals, row_of, variable=variable))

The sink creates the table and its unique index if missing, buffers the latest
row of every key between two commits and upserts them before the input
offsets are committed; see `topicflow.sinks.batching` for the delivery
guarantees. `SqliteSink` does the same into a SQLite file. `PostgresSink`
needs psycopg, the `postgres` extra.
"""

from typing import TYPE_CHECKING

from topicflow.sinks.backend import SinkBackend
from topicflow.sinks.batching import (
    BatchingProcessor,
    BatchingSink,
    RefusedRecordFunction,
    RowFunction,
)
from topicflow.sinks.database_url import DatabaseUrl, database_url_from_env, redacted
from topicflow.sinks.sqlite import SqliteSink
from topicflow.sinks.table import Row, Table

if TYPE_CHECKING:
    from topicflow.sinks.postgres import PostgresSink


def __getattr__(name: str) -> object:
    # PostgresSink needs psycopg (the `postgres` extra): imported when asked for.
    if name == "PostgresSink":
        from topicflow.sinks.postgres import PostgresSink

        return PostgresSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BatchingProcessor",
    "BatchingSink",
    "DatabaseUrl",
    "PostgresSink",
    "RefusedRecordFunction",
    "Row",
    "RowFunction",
    "SinkBackend",
    "SqliteSink",
    "Table",
    "database_url_from_env",
    "redacted",
]
