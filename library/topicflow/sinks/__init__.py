"""Sinks to external systems: processors that write their batches at every commit.

    from topicflow.sinks import WindowedCountSink

    counts.to_stream().process(windowed_count_sink_from_env())

`windowed_count_sink_from_env()` writes to PostgreSQL when `DATABASE_URL` (or a
single `HEROKU_POSTGRESQL_*_URL`) is set, else to a SQLite file
(`$TOPICFLOW_SQLITE_PATH`, default `windowed_counts.sqlite3`). See
`topicflow.sinks.windowed_counts` for the table and the delivery guarantees.
"""

from typing import TYPE_CHECKING

from topicflow.sinks.database_url import DatabaseUrl, redacted
from topicflow.sinks.from_env import (
    DEFAULT_SQLITE_PATH,
    database_url_from_env,
    windowed_count_sink_from_env,
)
from topicflow.sinks.sqlite import SqliteSink
from topicflow.sinks.windowed_counts import DEFAULT_TABLE, WindowedCountProcessor, WindowedCountSink

if TYPE_CHECKING:
    from topicflow.sinks.postgres import PostgresSink


def __getattr__(name: str) -> object:
    # PostgresSink needs psycopg (the `postgres` extra): imported when asked for.
    if name == "PostgresSink":
        from topicflow.sinks.postgres import PostgresSink

        return PostgresSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_SQLITE_PATH",
    "DEFAULT_TABLE",
    "DatabaseUrl",
    "PostgresSink",
    "SqliteSink",
    "WindowedCountProcessor",
    "WindowedCountSink",
    "database_url_from_env",
    "redacted",
    "windowed_count_sink_from_env",
]
