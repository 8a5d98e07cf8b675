"""The example's table `windowed_counts`: the Aggregator's counts, upserted by the library's sinks.

The Aggregator ends with

    .count(Materialized.as_("windowed-counts"))
    .to_stream()
    .process(windowed_count_sink_from_env())

Each record is `Windowed(word, TimeWindow(start, end)) -> count`; a None count
(a tombstone) is skipped: rows are never deleted, and a count buffered for the
same key stays. The table, as in the original Java example:

    windowed_counts(id serial primary key, time_window bigint not null,
                    word text not null, count bigint not null)
    + a unique index windowed_counts_time_window_word_idx on (time_window, word)

`time_window` is the window's start in epoch milliseconds. bin/heroku-setup
creates the same table (tests/unit/test_heroku_files.py compares the DDL).

A row the database refuses for its content (a word too long for the unique
index, say) goes to the dead-letter queue as key the word in UTF-8, value the
row as compact JSON, `{"time_window":<start ms>,"word":"...","count":N}`,
timestamp the window's start. Delivery and failures: `topicflow.sinks.batching`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from topicflow.dsl.windows import Windowed
from topicflow.errors import RefusedRecord
from topicflow.processor.api import Record
from topicflow.sinks import BatchingSink, SqliteSink, Table, database_url_from_env
from topicflow.sinks.sqlite import BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from topicflow.sinks import PostgresSink

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "DEFAULT_TABLE",
    "SQLITE_PATH_VARIABLE",
    "WindowedCountSink",
    "postgres_sink",
    "refused_record",
    "sqlite_sink",
    "windowed_count_row",
    "windowed_count_sink_from_env",
    "windowed_counts_table",
]

log = logging.getLogger(__name__)

DEFAULT_TABLE = "windowed_counts"
DEFAULT_SQLITE_PATH = "windowed_counts.sqlite3"
SQLITE_PATH_VARIABLE = "TOPICFLOW_SQLITE_PATH"

# A sink of windowed counts, whichever the database.
WindowedCountSink = BatchingSink[Windowed[str], int | None]
# (time_window, word, count): one row of the table.
WindowedCountRow = tuple[int, str, int]


def windowed_counts_table(name: str = DEFAULT_TABLE) -> Table:
    return Table(
        name,
        keys={"time_window": "bigint", "word": "text"},
        values={"count": "bigint"},
        serial_id="id",
    )


def windowed_count_row(record: Record[Windowed[str], int | None]) -> WindowedCountRow | None:
    """The row of a windowed count: (window start, word, count); None for a tombstone.

    Raises TypeError or ValueError for a record the table cannot hold: raised
    from `process()`, the processing exception handler decides (fail or skip).
    """
    count = record.value
    if count is None:
        return None  # a tombstone: counts are never deleted
    key = record.key
    # The Aggregator's hot path: every check in one condition, the reason only
    # looked for when one fails.
    if isinstance(key, Windowed):
        word, start = key.key, key.window.start
        if (
            isinstance(word, str)
            and type(count) is int
            and type(start) is int
            and -0x8000000000000000 <= count <= 0x7FFFFFFFFFFFFFFF
            and -0x8000000000000000 <= start <= 0x7FFFFFFFFFFFFFFF
            and "\x00" not in word
        ):
            return (start, word, count)
    raise _why_not(key, count)


def _why_not(key: object, count: object) -> Exception:
    """Why a windowed count cannot be a row (the first check it fails)."""
    if not isinstance(key, Windowed) or not isinstance(key.key, str):
        shown = f"Windowed[{_type_name(key.key)}]" if isinstance(key, Windowed) else _type_name(key)
        return TypeError(f"windowed count sink: the key must be Windowed[str], not {shown}")
    start = key.window.start
    if type(count) is not int or type(start) is not int:
        return TypeError(
            f"windowed count sink: count and window start must be int, "
            f"not {_type_name(count)} and {_type_name(start)}"
        )
    if not (-(2**63) <= count < 2**63 and -(2**63) <= start < 2**63):
        return ValueError("windowed count sink: count or window start outside 64-bit integers")
    return ValueError("windowed count sink: the word contains a NUL character")


def refused_record(row: tuple[Any, ...], error: Exception) -> RefusedRecord:
    """A refused row as the dead-letter queue gets it: key the word in UTF-8, value
    `{"time_window":<start ms>,"word":"...","count":N}` (compact JSON, UTF-8),
    timestamp the window's start.

    A lone surrogate, which UTF-8 cannot carry, becomes a backslash escape:
    `\\udcff` in the key, the JSON escape (the same character) in the value.
    """
    start, word, _count = row
    return RefusedRecord(
        word.encode("utf-8", "backslashreplace"),
        _TABLE.as_json(row),  # the columns' names are the default table's
        error,
        start,  # the dead letter's timestamp: the window's start
    )


_TABLE = windowed_counts_table()


def postgres_sink(
    database_url: str, table: str = DEFAULT_TABLE, **options: Any
) -> PostgresSink[Windowed[str], int | None]:
    """Windowed counts into PostgreSQL; `options` as `PostgresSink`'s (`variable`...)."""
    from topicflow.sinks.postgres import PostgresSink

    return PostgresSink(
        database_url,
        windowed_counts_table(table),
        windowed_count_row,
        refused_record=refused_record,
        **options,
    )


def sqlite_sink(
    path: str | os.PathLike[str], table: str = DEFAULT_TABLE, *, timeout: float = BUSY_TIMEOUT_S
) -> SqliteSink[Windowed[str], int | None]:
    """Windowed counts into a SQLite file."""
    return SqliteSink(
        path,
        windowed_counts_table(table),
        windowed_count_row,
        refused_record=refused_record,
        timeout=timeout,
    )


def windowed_count_sink_from_env(
    environ: Mapping[str, str] | None = None, table: str = DEFAULT_TABLE
) -> WindowedCountSink:
    """PostgreSQL if `DATABASE_URL` (or a single `HEROKU_POSTGRESQL_*_URL`) is set,
    else SQLite in `$TOPICFLOW_SQLITE_PATH` (default `windowed_counts.sqlite3` in the
    current directory): the demo needs no setup."""
    environ = os.environ if environ is None else environ
    found = database_url_from_env(environ)
    sink: WindowedCountSink
    if found is not None:
        variable, url = found
        sink = postgres_sink(url, table, variable=variable)
        log.info("windowed counts go to %s, table %s (from %s)", sink.where, table, variable)
    else:
        path = environ.get(SQLITE_PATH_VARIABLE, "").strip() or DEFAULT_SQLITE_PATH
        sink = sqlite_sink(path, table)
        log.info(
            "windowed counts go to %s, table %s (set DATABASE_URL to use PostgreSQL)",
            sink.where,
            table,
        )
    return sink


def _type_name(value: object) -> str:
    return type(value).__name__
