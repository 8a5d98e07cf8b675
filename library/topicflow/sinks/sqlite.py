"""Upserts into a table of a SQLite file: zero setup, for demos, tests and single hosts.

    stream.process(SqliteSink("totals.sqlite3", totals, row_of))

Same table and semantics as `PostgresSink` (a serial id is `INTEGER PRIMARY
KEY AUTOINCREMENT`, a unique index on the key columns, upserts with `INSERT
... ON CONFLICT (keys) DO UPDATE SET value = excluded.value`), one `BEGIN
IMMEDIATE` transaction per flush with `executemany`.

A file locked by another writer for more than `timeout` seconds, a full disk or
an I/O error are retried (RetriableError); anything else (a missing folder, a
read-only file, a table of another shape) stops the worker (StreamsException).

SQLite has no length limit worth the name (a billion bytes), but a table's owner
may add constraints: a row refused by a CHECK, a foreign key, a unique index on
other columns, a NOT NULL on a column the sink writes or a trigger's
RAISE(ABORT), or longer than the connection's length limit, or a text with a
lone surrogate (which UTF-8 cannot carry), is refused for its content, as in
PostgreSQL: the other rows are written.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TypeVar

from topicflow.errors import RetriableError, StreamsException, TopicflowError
from topicflow.sinks.backend import SinkBackend, not_retried, rows_kept
from topicflow.sinks.batching import BatchingSink, RefusedRecordFunction, RowFunction
from topicflow.sinks.table import Row, Table

__all__ = ["BUSY_TIMEOUT_S", "SqliteBackend", "SqliteSink"]

K = TypeVar("K")
V = TypeVar("V")

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

# Result codes (sqlite_errorname) of a row refused for its content (and
# SQLITE_CONSTRAINT_NOTNULL on a column the sink writes: see refused_for_content).
_CONTENT_CODES = frozenset(
    {
        "SQLITE_CONSTRAINT_CHECK",
        "SQLITE_CONSTRAINT_FOREIGNKEY",
        "SQLITE_CONSTRAINT_TRIGGER",
        "SQLITE_CONSTRAINT_UNIQUE",
        "SQLITE_TOOBIG",
    }
)
# Messages of a table of another shape (columns missing, no unique index on the keys).
_SHAPE_MESSAGES = ("no such column", "has no column named", "ON CONFLICT clause does not match")


def _quoted(name: str) -> str:
    # Names are checked lower-case identifiers: quoting needs no escaping, and
    # spares a list of SQLite's keywords.
    return f'"{name}"'


def create_sql(table: Table) -> list[str]:
    """The table's DDL: the table, then its unique index on the key columns."""
    columns = [
        f"{_quoted(c)} {t}{'' if c in table.nullable else ' NOT NULL'}"
        for c, t in (*table.keys, *table.values)
    ]
    if table.serial_id is not None:
        columns.insert(0, f"{_quoted(table.serial_id)} INTEGER PRIMARY KEY AUTOINCREMENT")
    keys = ", ".join(map(_quoted, table.key_columns))
    return [
        f"CREATE TABLE IF NOT EXISTS {_quoted(table.name)} ({', '.join(columns)})",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {_quoted(table.index_name)} "
        f"ON {_quoted(table.name)} ({keys})",
    ]


def upsert_sql(table: Table) -> str:
    """One statement upserting a row given as parameters."""
    updates = ", ".join(f"{_quoted(c)} = excluded.{_quoted(c)}" for c in table.value_columns)
    return (
        f"INSERT INTO {_quoted(table.name)} ({', '.join(map(_quoted, table.columns))}) "
        f"VALUES ({', '.join('?' * len(table.columns))}) "
        f"ON CONFLICT ({', '.join(map(_quoted, table.key_columns))}) "
        + (f"DO UPDATE SET {updates}" if updates else "DO NOTHING")
    )


class SqliteBackend(SinkBackend[sqlite3.Connection]):
    """Connections to one file, the table's DDL and upsert, errors by result code."""

    def __init__(self, path: Path, table: Table, *, timeout: float) -> None:
        self.path = path
        self.table = table
        self.timeout = timeout
        self.create_sql = create_sql(table)
        self.upsert_sql = upsert_sql(table)

    @property
    def where(self) -> str:
        return f"SQLite at {self.path}"

    def open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and committed explicitly.
        # check_same_thread=False: the thread's last task may be closed from
        # another thread; use is never concurrent (one thread's tasks flush in turn).
        return sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )

    def create_table(self, connection: sqlite3.Connection) -> None:
        connection.execute("BEGIN IMMEDIATE")
        for statement in self.create_sql:
            connection.execute(statement)
        connection.execute("COMMIT")

    def write(self, connection: sqlite3.Connection, rows: list[Row]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(self.upsert_sql, rows)
        connection.execute("COMMIT")

    def close(self, connection: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            connection.close()  # rolls back an open transaction

    def refused_for_content(self, error: Exception) -> bool:
        if isinstance(error, UnicodeEncodeError):
            return True  # a lone surrogate in a text
        code = getattr(error, "sqlite_errorname", None)
        if code == "SQLITE_CONSTRAINT_NOTNULL":
            # "NOT NULL constraint failed: table.column": the row's own NULL, or a
            # column the sink does not write (a table of another shape).
            failed = str(error).rpartition(".")[2]
            return failed in self.table.columns
        return code in _CONTENT_CODES

    def failure(self, error: Exception, during: str, rows: int) -> TopicflowError | None:
        if not isinstance(error, sqlite3.Error):
            return None
        code = getattr(error, "sqlite_errorname", None) or type(error).__name__
        reason = " ".join(str(error).split()) or code
        if code.startswith(_RETRIABLE_PREFIXES):
            return RetriableError(f"{self.where} unavailable: {reason}; {rows_kept(rows)}")
        if any(message in reason for message in _SHAPE_MESSAGES):
            hint = self.table.shape()
        elif code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM")):
            hint = "check that the folder exists and the file is writable"
        else:
            hint = code
        return StreamsException(
            f"{self.where}: {during} failed: {reason}; {hint}; {not_retried(rows)}"
        )


class SqliteSink(BatchingSink[K, V]):
    """Supplier of processors upserting rows into a table of a SQLite file.

    A relative `path` is resolved against the current directory when the sink is
    created. The folder must exist; the file is created if missing. See
    `BatchingSink` for `row_of` and `refused_record`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        table: Table,
        row_of: RowFunction[K, V],
        *,
        refused_record: RefusedRecordFunction | None = None,
        timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.path = Path(path).expanduser().absolute()
        backend = SqliteBackend(self.path, table, timeout=timeout)
        super().__init__(backend, table, row_of, refused_record=refused_record)
