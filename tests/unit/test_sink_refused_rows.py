"""Rows a database refuses for their content: classified by cause, isolated, dead-lettered.

Classification of PostgreSQL's errors by SQLSTATE (no server needed), the
bisection of the batching sink on an in-memory fake backend, and the same path
on SQLite with a table that has its own CHECK constraint.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.windowed_counts import (
    postgres_sink,
    refused_record,
    sqlite_sink,
    windowed_count_row,
    windowed_counts_table,
)
from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import (
    RecordsRefused,
    RetriableError,
    StreamsException,
    TopicflowError,
)
from topicflow.processor.api import Record
from topicflow.sinks import BatchingSink, PostgresSink, Row, SinkBackend
from topicflow.sinks.postgres import PostgresBackend

SIZE = 10_000


def rec(word: str, start: int, count: int) -> Record[Windowed[str], int | None]:
    return Record(Windowed(word, TimeWindow(start, start + SIZE)), count, start)


# -- PostgreSQL: classified by SQLSTATE -----------------------------------------------

CONTENT = {
    "22001": "string_data_right_truncation (value too long)",
    "22003": "numeric_value_out_of_range",
    "22021": "character_not_in_repertoire",
    "22P05": "untranslatable_character",
    "54000": "program_limit_exceeded (index row size exceeds btree maximum)",
    "23514": "check_violation",
    "23503": "foreign_key_violation",
    "23505": "unique_violation (another unique index)",
    "23P01": "exclusion_violation",
}
NOT_CONTENT = {
    # retried
    "08006": RetriableError,  # connection_failure
    "57P01": RetriableError,  # admin_shutdown
    "57014": RetriableError,  # query_canceled (statement_timeout)
    "53100": RetriableError,  # disk_full
    "53300": RetriableError,  # too_many_connections
    "40P01": RetriableError,  # deadlock_detected
    "40001": RetriableError,  # serialization_failure
    "55P03": RetriableError,  # lock_not_available (lock_timeout)
    "42P01": RetriableError,  # undefined_table (dropped: re-created)
    "25006": RetriableError,  # read_only_sql_transaction (a standby after failover)
    # fatal
    "42703": StreamsException,  # undefined_column: another shape
    "23502": StreamsException,  # not_null_violation: a column the sink does not write
    "42501": StreamsException,  # insufficient_privilege
    "28P01": StreamsException,  # invalid_password
}


@pytest.fixture
def pg() -> PostgresBackend:
    sink: PostgresSink[Any, Any] = postgres_sink("postgres://u:secret@db.example.com:5432/d")
    assert isinstance(sink.backend, PostgresBackend)
    return sink.backend  # never connects


def pg_error(sqlstate: str) -> psycopg.Error:
    error = psycopg.errors.lookup(sqlstate)("the server's message")
    assert error.sqlstate == sqlstate
    return error


@pytest.mark.parametrize("sqlstate", sorted(CONTENT))
def test_postgres_content_errors_by_sqlstate(pg: PostgresBackend, sqlstate: str) -> None:
    assert pg.refused_for_content(pg_error(sqlstate))


@pytest.mark.parametrize("sqlstate", sorted(NOT_CONTENT))
def test_postgres_other_errors_keep_their_meaning(pg: PostgresBackend, sqlstate: str) -> None:
    error = pg_error(sqlstate)
    assert not pg.refused_for_content(error)
    failure = pg.failure(error, "writing", 3)
    assert type(failure) is NOT_CONTENT[sqlstate]


def test_postgres_client_side_errors(pg: PostgresBackend) -> None:
    # psycopg encodes text in the connection's client_encoding before sending it.
    assert pg.refused_for_content(UnicodeEncodeError("latin-1", "日本", 0, 1, "no"))
    # psycopg's own checks of a value (no SQLSTATE): a DataError.
    assert pg.refused_for_content(psycopg.DataError("text fields cannot contain NUL"))
    # A failed connection or a broken one has no SQLSTATE either: not content.
    assert not pg.refused_for_content(psycopg.OperationalError("connection refused"))
    assert not pg.refused_for_content(psycopg.InterfaceError("the connection is closed"))
    assert not pg.refused_for_content(ValueError("not the database's"))


# -- the shared path: bisection --------------------------------------------------------


class Refused(Exception):
    """The fake database's content error."""


class Down(Exception):
    """The fake database's unavailability."""


class FakeBackend(SinkBackend[Any]):
    """An in-memory table: a transaction with a word in `bad` is refused whole;
    `down_at` makes the n-th transaction fail with Down."""

    def __init__(self, bad: set[str]) -> None:
        self.bad = bad
        self.table_rows: dict[tuple[int, str], int] = {}
        self.transactions: list[list[Row]] = []
        self.down_at: int | None = None

    @property
    def where(self) -> str:
        return "the fake"

    def open(self) -> Any:
        return self

    def create_table(self, connection: Any) -> None:
        pass

    def write(self, connection: Any, rows: list[Row]) -> None:
        self.transactions.append(rows)
        if len(self.transactions) == self.down_at:
            raise Down("gone")
        refused = [w for _, w, _ in rows if w in self.bad]
        if refused:
            raise Refused(f"cannot take {refused[0]}")
        self.table_rows.update({(s, w): c for s, w, c in rows})

    def rollback(self, connection: Any) -> None:
        pass

    def close(self, connection: Any) -> None:
        pass

    def refused_for_content(self, error: Exception) -> bool:
        return isinstance(error, Refused)

    def failure(self, error: Exception, during: str, rows: int) -> TopicflowError | None:
        if isinstance(error, Down):
            return RetriableError(f"down; {rows} rows kept for retry")
        return None


def windowed_counts(backend: FakeBackend) -> BatchingSink[Any, Any]:
    """The example's windowed counts on the fake backend."""
    return BatchingSink(
        backend, windowed_counts_table(), windowed_count_row, refused_record=refused_record
    )


def fill(backend: FakeBackend, words: list[str]) -> Any:
    proc = windowed_counts(backend)()
    for i, word in enumerate(words):
        proc.process(rec(word, 0, i + 1))
    return proc


def test_nothing_refused_is_one_transaction() -> None:
    sink = FakeBackend(bad=set())
    fill(sink, [f"w{i:03}" for i in range(300)]).flush()
    assert [len(t) for t in sink.transactions] == [300]
    assert len(sink.table_rows) == 300


def test_refused_rows_are_isolated_and_every_other_row_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    words = [f"w{i:03}" for i in range(300)]
    bad = {"w007", "w150", "w151", "w299"}
    sink = FakeBackend(bad)
    proc = fill(sink, words)
    with caplog.at_level(logging.WARNING), pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [r.key for r in raised.value.refused] == [b"w007", b"w150", b"w151", b"w299"]
    assert all(isinstance(r.error, Refused) for r in raised.value.refused)
    assert str(raised.value.refused[0].error) == "cannot take w007"
    assert raised.value.where == "the fake"
    assert proc.pending == 0
    assert sink.table_rows == {(0, w): i + 1 for i, w in enumerate(words) if w not in bad}
    # The whole batch once, then halves: about 2 * 4 * log2(300) transactions at most.
    assert len(sink.transactions[0]) == 300
    assert len(sink.transactions) <= 2 * 4 * 9 + 1
    assert [t[0][1] for t in sink.transactions if len(t) == 1 and t[0][1] in bad] == sorted(bad)
    (warning,) = [r.getMessage() for r in caplog.records if r.name.startswith("topicflow")]
    assert warning.startswith("the fake refused 4 rows for their content")
    assert "'w007'" in warning and "Refused: cannot take w007" in warning
    # The next flush has nothing refused: one transaction.
    sink.transactions.clear()
    proc.process(rec("w000", 0, 42))
    proc.flush()
    assert len(sink.transactions) == 1 and sink.table_rows[(0, "w000")] == 42


def test_a_failure_during_isolation_keeps_every_row() -> None:
    words = [f"w{i:02}" for i in range(20)]
    sink = FakeBackend({"w05"})
    proc = fill(sink, words)
    sink.down_at = 3  # the whole batch, its first half, then down
    with pytest.raises(RetriableError, match="down; 20 rows kept for retry"):
        proc.flush()
    assert proc.pending == 20
    sink.down_at = None
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [r.key for r in raised.value.refused] == [b"w05"]
    assert len(sink.table_rows) == 19


def test_a_single_row_batch_refused() -> None:
    sink = FakeBackend({"only"})
    proc = fill(sink, ["only"])
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [r.key for r in raised.value.refused] == [b"only"]
    assert len(sink.transactions) == 1 and proc.pending == 0


def test_only_writing_rows_can_refuse_them() -> None:
    """An error while creating the table (e.g. PostgreSQL's 23505 when two instances
    create it at once) says nothing about the rows: never isolated nor refused."""

    class Racing(FakeBackend):
        def create_table(self, connection: Any) -> None:
            raise Refused("unique violation on pg_type")

    sink = Racing(set())
    proc = fill(sink, ["a", "b"])
    with pytest.raises(Refused):
        proc.flush()
    assert proc.pending == 2 and sink.transactions == []


def test_the_base_class_refuses_nothing_by_default() -> None:
    class Plain(FakeBackend):
        refused_for_content = SinkBackend.refused_for_content

    sink = Plain({"bad"})
    proc = fill(sink, ["bad", "good"])
    with pytest.raises(Refused):  # let through, as `failure` says: nothing is isolated
        proc.flush()
    assert proc.pending == 2 and len(sink.transactions) == 1


# -- the dead-letter record --------------------------------------------------------------


def test_refused_record_layout() -> None:
    error = ValueError("no")
    record = refused_record((10_000, 'a "quoted" wörd', 3), error)
    assert record.key == 'a "quoted" wörd'.encode()
    assert record.value == '{"time_window":10000,"word":"a \\"quoted\\" wörd","count":3}'.encode()
    assert record.error is error
    # A lone surrogate, which UTF-8 cannot carry: escaped, the JSON decodes to the word.
    record = refused_record((-5, "a\udcffb", 1), error)
    assert record.key == b"a\\udcffb"
    assert record.value == b'{"time_window":-5,"word":"a\\udcffb","count":1}'
    assert json.loads(record.value)["word"] == "a\udcffb"


def test_a_long_word_is_only_sampled_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    long_word = "x" * 20_000

    class Echo(FakeBackend):
        def write(self, connection: Any, rows: list[Row]) -> None:
            if any(w == long_word for _, w, _ in rows):
                raise Refused(f"cannot take {long_word}\nDETAIL: the row ({long_word})")
            super().write(connection, rows)

    proc = fill(Echo(set()), ["short", long_word])
    with caplog.at_level(logging.WARNING), pytest.raises(RecordsRefused):
        proc.flush()
    (warning,) = [r.getMessage() for r in caplog.records if r.name.startswith("topicflow")]
    assert "x" * 81 not in warning
    assert "(20000 characters)" in warning
    assert len(warning) < 400 and "\n" not in warning


# -- SQLite: the same path ----------------------------------------------------------------


def test_sqlite_rows_refused_by_the_table_s_check(tmp_path: Path) -> None:
    db = tmp_path / "counts.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE windowed_counts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "time_window BIGINT NOT NULL, word TEXT NOT NULL CHECK (length(word) <= 20), "
            "count BIGINT NOT NULL)"
        )
        conn.execute(
            "CREATE UNIQUE INDEX windowed_counts_idx ON windowed_counts (time_window, word)"
        )
    conn.close()
    proc = sqlite_sink(db)()
    words = [f"word{i}" for i in range(100)]
    for i, word in enumerate(words):
        proc.process(rec(word, 0, i))
    proc.process(rec("w" * 21, SIZE, 1))
    proc.process(rec("a\udcffb", 0, 2))  # lone surrogate: sqlite3 cannot encode it
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    refused = raised.value.refused
    assert [(r.key, r.value) for r in refused] == [
        (b"a\\udcffb", b'{"time_window":0,"word":"a\\udcffb","count":2}'),
        (b"w" * 21, b'{"time_window":10000,"word":"' + b"w" * 21 + b'","count":1}'),
    ]
    assert isinstance(refused[0].error, UnicodeEncodeError)
    assert getattr(refused[1].error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_CHECK"
    assert proc.pending == 0
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT word, count FROM windowed_counts ORDER BY id").fetchall()
    conn.close()
    assert sorted(rows) == sorted((w, i) for i, w in enumerate(words))
    proc.close()


def test_sqlite_classifier() -> None:
    sink = sqlite_sink(":memory:").backend
    too_big = sqlite3.DataError("string or blob too big")
    too_big.sqlite_errorname = "SQLITE_TOOBIG"
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorname = "SQLITE_BUSY"
    not_null = sqlite3.IntegrityError("NOT NULL constraint failed")
    not_null.sqlite_errorname = "SQLITE_CONSTRAINT_NOTNULL"
    assert sink.refused_for_content(too_big)
    assert not sink.refused_for_content(busy)
    assert not sink.refused_for_content(not_null)
