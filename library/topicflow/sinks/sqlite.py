"""Windowed counts into a SQLite file: the zero-setup default when no DATABASE_URL is set.

    stream.process(SqliteSink("windowed_counts.sqlite3"))

Same table and semantics as `PostgresSink` (`id integer primary key
autoincrement`, a unique index on (time_window, word), upserts with `INSERT ...
ON CONFLICT (time_window, word) DO UPDATE SET count = EXCLUDED.count`), one
`BEGIN IMMEDIATE` transaction per flush with `executemany`.

A file locked by another writer for more than `timeout` seconds, a full disk or
an I/O error are retried (RetriableError); anything else (a missing folder, a
read-only file, a table of another shape) stops the worker (StreamsException).

SQLite has no length limit worth the name (a billion bytes), but a table's owner
may add constraints: a row refused by a CHECK, a foreign key, a unique index on
other columns or a trigger's RAISE(ABORT), or longer than the connection's
length limit, or a word with a lone surrogate (which UTF-8 cannot carry), is
refused for its content, as in PostgreSQL: the other rows are written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from topicflow.errors import RetriableError, StreamsException, TopicflowError
from topicflow.sinks.windowed_counts import (
    DEFAULT_TABLE,
    Row,
    WindowedCountSink,
    index_name,
    not_retried,
    rows_kept,
)

__all__ = ["BUSY_TIMEOUT_S", "SqliteSink"]

# How long a write waits for another connection's lock before giving up.
BUSY_TIMEOUT_S = 5.0

# Result codes (sqlite_errorname, extended codes included) worth retrying.
_RETRIABLE_PREFIXES = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_FULL",
    "SQLITE_IOERR",
    "SQLITE_PROTOCOL",
    "SQLITE_INTERRUPT",
)

# Result codes (sqlite_errorname) of a row refused for its content. Not
# SQLITE_CONSTRAINT_NOTNULL: the rows' values are never null, so a column the
# sink does not write (a table of another shape).
_CONTENT_CODES = frozenset(
    {
        "SQLITE_CONSTRAINT_CHECK",
        "SQLITE_CONSTRAINT_FOREIGNKEY",
        "SQLITE_CONSTRAINT_TRIGGER",
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_TOOBIG",
    }
)


class SqliteSink(WindowedCountSink):
    """Supplier of processors upserting windowed counts into a table of a SQLite file.

    A relative `path` is resolved against the current directory when the sink is
    created. The folder must exist; the file is created if missing.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        table: str = DEFAULT_TABLE,
        *,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        super().__init__(table)
        self.path = Path(path).expanduser().absolute()
        self.timeout = timeout
        self._create_sql = [
            f'CREATE TABLE IF NOT EXISTS "{table}" (id INTEGER PRIMARY KEY AUTOINCREMENT, '
            "time_window BIGINT NOT NULL, word TEXT NOT NULL, count BIGINT NOT NULL)",
            f'CREATE UNIQUE INDEX IF NOT EXISTS "{index_name(table)}" '
            f'ON "{table}" (time_window, word)',
        ]
        # The table name is checked (lower-case letters, digits, underscores);
        # values are parameters.
        self._upsert_sql = (
            f'INSERT INTO "{table}" (time_window, word, count) VALUES (?, ?, ?) '
            "ON CONFLICT (time_window, word) DO UPDATE SET count = excluded.count"
        )

    @property
    def where(self) -> str:
        return f"SQLite at {self.path}"

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and committed explicitly.
        # check_same_thread=False: the thread's last task may be closed from
        # another thread; use is never concurrent (one thread's tasks flush in turn).
        return sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )

    def _create_table(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        for statement in self._create_sql:
            connection.execute(statement)
        connection.execute("COMMIT")

    def _write(self, connection: sqlite3.Connection, rows: list[Row]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(self._upsert_sql, rows)
        connection.execute("COMMIT")

    def _close(self, connection: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            connection.close()  # rolls back an open transaction

    def _refused_for_content(self, error: Exception) -> bool:
        if isinstance(error, UnicodeEncodeError):
            return True  # a lone surrogate in a word
        return getattr(error, "sqlite_errorname", None) in _CONTENT_CODES

    def _failure(self, error: Exception, during: str, rows: int) -> TopicflowError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        code = getattr(error, "sqlite_errorname", None) or type(error).__name__
        reason = " ".join(str(error).split()) or code
        if code.startswith(_RETRIABLE_PREFIXES):
            return RetriableError(f"{self.where} unavailable: {reason}; {rows_kept(rows)}")
        if "no such column" in reason or "ON CONFLICT clause does not match" in reason:
            hint = (
                f"table {self.table} must have the columns time_window, word and count, "
                "and a unique index on (time_window, word)"
            )
        elif code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")):
            hint = "check that the folder exists and the file is writable"
        else:
            hint = code
        return StreamsException(
            f"{self.where}: {during} failed: {reason}; {hint}; {not_retried(rows)}"
        )
