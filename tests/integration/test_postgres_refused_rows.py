"""Rows PostgreSQL refuses for their content are isolated and dead-lettered, not retried.

Issue 11, point 3: a 3,000-character word made PostgreSQL refuse the upsert
("index row size 3024 exceeds btree version 4 maximum 2704", SQLSTATE 54000);
the sink retried it forever and no other word reached the table. Each test
writes to a fresh database (the `database` fixture).
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from services.windowed_counts import postgres_sink
from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import RecordsRefused, RetriableError, StreamsException
from topicflow.processor.api import Record
from topicflow.sinks import BatchingProcessor, PostgresSink

SIZE = 10_000
TABLE = "windowed_counts"


def rec(word: str, start: int, count: int) -> Record[Windowed[str], int | None]:
    return Record(Windowed(word, TimeWindow(start, start + SIZE)), count, start)


def incompressible(length: int, seed: int) -> str:
    """Random letters: PostgreSQL cannot compress them below its index row limit."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def conn(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def table(url: str) -> list[tuple[int, str, int]]:
    with conn(url) as c:
        result = c.execute(f"SELECT time_window, word, count FROM {TABLE} ORDER BY 1, 2")
        return [(r[0], r[1], r[2]) for r in result]


@pytest.fixture
def sink(database: str) -> PostgresSink[Any, Any]:
    return postgres_sink(database)


@pytest.fixture
def proc(sink: PostgresSink[Any, Any]) -> Iterator[BatchingProcessor[Any, Any]]:
    processor = sink()
    yield processor
    processor.close()


@pytest.fixture
def transactions(sink: PostgresSink[Any, Any], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each transaction the sink attempts (committed or not)."""
    sizes: list[int] = []
    write = sink.backend.write

    def counting(connection: Any, rows: list[tuple[int, str, int]]) -> None:
        sizes.append(len(rows))
        write(connection, rows)

    monkeypatch.setattr(sink.backend, "write", counting)
    return sizes


def create_table(proc: BatchingProcessor[Any, Any]) -> None:
    proc.process(rec("setup", -SIZE, 1))
    proc.flush()


def test_long_words_are_refused_and_every_other_row_written(
    database: str,
    proc: BatchingProcessor[Any, Any],
    transactions: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    long_word, longer_word = incompressible(3_000, 1), incompressible(20_000, 2)
    good = {(i % 7 * SIZE, f"word{i:03}"): i + 1 for i in range(500)}
    for (start, word), count in good.items():
        proc.process(rec(word, start, count))
        if word == "word100":
            proc.process(rec(long_word, SIZE, 7))
        if word == "word400":
            proc.process(rec(longer_word, 0, 12))

    with caplog.at_level(logging.WARNING), pytest.raises(RecordsRefused) as raised:
        proc.flush()

    refused = raised.value.refused
    # Sorted by (window start, word): the 20,000-character word's window comes first.
    assert [(r.key, r.value) for r in refused] == [
        (
            longer_word.encode(),
            b'{"time_window":0,"word":"' + longer_word.encode() + b'","count":12}',
        ),
        (
            long_word.encode(),
            b'{"time_window":10000,"word":"' + long_word.encode() + b'","count":7}',
        ),
    ]
    assert [getattr(r.error, "sqlstate", None) for r in refused] == ["54000", "54000"]
    assert "index row" in str(refused[1].error)
    assert (
        raised.value.where
        == "PostgreSQL at topicflow@127.0.0.1:15432/" + database.rsplit("/", 1)[1]
    )
    assert proc.pending == 0
    assert table(database) == sorted((s, w, c) for (s, w), c in good.items())

    # The batch went in one transaction, then the two rows were isolated by
    # bisection: a few dozen transactions, not one per row.
    assert transactions[0] == 502
    assert len(transactions) <= 2 * 2 * 9 + 1
    assert transactions.count(1) >= 2

    # One warning for the flush, with no more than a sample of the words.
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("topicflow")
    ]
    assert len(warnings) == 1
    assert "refused 2 rows for their content" in warnings[0]
    assert "ProgramLimitExceeded" in warnings[0]
    assert len(warnings[0]) < 500
    assert long_word[:81] not in warnings[0] and longer_word[:81] not in warnings[0]

    # The next flush writes the good words' new counts; nothing is refused again.
    transactions.clear()
    for (start, word), count in good.items():
        proc.process(rec(word, start, count * 10))
    proc.flush()
    assert transactions == [500]
    assert table(database) == sorted((s, w, c * 10) for (s, w), c in good.items())


def test_a_row_refused_by_a_check_constraint_is_not_retried(
    database: str, proc: BatchingProcessor[Any, Any]
) -> None:
    create_table(proc)
    with conn(database) as c:
        c.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT below_a_million CHECK (count < 1000000)")
    proc.process(rec("a", 0, 5))
    proc.process(rec("huge", 0, 5_000_000))
    proc.process(rec("z", 0, 6))
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    (refused,) = raised.value.refused
    assert (refused.key, refused.value) == (
        b"huge",
        b'{"time_window":0,"word":"huge","count":5000000}',
    )
    assert isinstance(refused.error, psycopg.errors.CheckViolation)
    assert proc.pending == 0
    assert table(database) == [(-SIZE, "setup", 1), (0, "a", 5), (0, "z", 6)]


@pytest.mark.parametrize(
    ("alter", "word", "count", "sqlstate"),
    [
        ("ALTER COLUMN word TYPE varchar(50)", "w" * 51, 1, "22001"),  # value too long
        ("ALTER COLUMN count TYPE integer", "many", 3_000_000_000, "22003"),  # out of range
        ("ADD CONSTRAINT one_word UNIQUE (word)", "setup", 2, "23505"),  # another unique index
    ],
)
def test_rows_refused_by_the_table_s_own_limits(
    database: str,
    proc: BatchingProcessor[Any, Any],
    alter: str,
    word: str,
    count: int,
    sqlstate: str,
) -> None:
    create_table(proc)
    with conn(database) as c:
        c.execute(f"ALTER TABLE {TABLE} {alter}")
    proc.process(rec("ok", 0, 1))
    proc.process(rec(word, 0, count))
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [(r.key, getattr(r.error, "sqlstate", None)) for r in raised.value.refused] == [
        (word.encode(), sqlstate)
    ]
    assert (0, "ok", 1) in table(database)


def test_a_word_the_server_encoding_cannot_carry_is_refused(
    database: str, dev_env: Any, unique: str
) -> None:
    """22P05 (untranslatable character) from a LATIN1 database; the client-side twin,
    a client_encoding that cannot carry the word, fails in psycopg before sending."""
    name = f"latin1_{unique}"
    admin = dev_env.database_url
    with conn(admin) as c:
        c.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    try:
        latin1 = admin.rsplit("/", 1)[0] + f"/{name}"
        for url, error in (
            (f"{latin1}?client_encoding=UTF8", "22P05"),
            (f"{database}?client_encoding=LATIN1", None),
        ):
            proc = postgres_sink(url)()
            proc.process(rec("café", 0, 1))  # é is in LATIN1
            proc.process(rec("日本", 0, 2))
            with pytest.raises(RecordsRefused) as raised:
                proc.flush()
            (refused,) = raised.value.refused
            assert refused.key == "日本".encode()
            assert refused.value == '{"time_window":0,"word":"日本","count":2}'.encode()
            assert getattr(refused.error, "sqlstate", None) == error
            if error is None:
                assert isinstance(refused.error, UnicodeEncodeError)
            proc.close()
            assert table(url.split("?")[0]) == [(0, "café", 1)]
    finally:
        with conn(admin) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_lost_connection_during_isolation_is_retried_with_every_row_kept(
    database: str,
    sink: PostgresSink[Any, Any],
    proc: BatchingProcessor[Any, Any],
    transactions: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create_table(proc)
    backend = proc._bind().connection.info.backend_pid
    write = sink.backend.write
    calls = 0

    def killed_while_isolating(connection: Any, rows: list[tuple[int, str, int]]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:  # the first half, after the whole batch was refused
            with conn(database) as c:
                c.execute("SELECT pg_terminate_backend(%s)", (backend,))
        write(connection, rows)

    monkeypatch.setattr(sink.backend, "write", killed_while_isolating)
    transactions.clear()
    words = [f"w{i}" for i in range(10)]
    for i, word in enumerate(words):
        proc.process(rec(word, 0, i))
    proc.process(rec(incompressible(3_000, 3), 0, 1))
    with pytest.raises(RetriableError, match="11 rows kept for retry"):
        proc.flush()
    assert proc.pending == 11
    # The connection is gone: the next flush reconnects, isolates the long word
    # and writes the rest.
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert len(raised.value.refused) == 1
    assert proc.pending == 0
    assert table(database) == [(-SIZE, "setup", 1)] + [(0, w, i) for i, w in enumerate(words)]


def test_a_terminated_connection_is_still_retried(
    database: str, proc: BatchingProcessor[Any, Any]
) -> None:
    create_table(proc)
    backend = proc._bind().connection.info.backend_pid
    with conn(database) as c:
        c.execute("SELECT pg_terminate_backend(%s)", (backend,))
    proc.process(rec("a", 0, 1))
    proc.process(rec("b", 0, 2))
    with pytest.raises(RetriableError, match="2 rows kept for retry"):
        proc.flush()
    assert proc.pending == 2
    proc.flush()
    assert table(database) == [(-SIZE, "setup", 1), (0, "a", 1), (0, "b", 2)]


def test_a_lock_timeout_is_retried(database: str) -> None:
    url = f"{database}?options=-c%20lock_timeout%3D200"
    proc = postgres_sink(url)()
    create_table(proc)
    with conn(database) as holder:
        holder.execute("BEGIN")
        holder.execute(f"SELECT 1 FROM {TABLE} WHERE word = 'setup' FOR UPDATE")
        proc.process(rec("setup", -SIZE, 2))
        proc.process(rec("other", 0, 1))
        with pytest.raises(RetriableError, match=r"lock.*SQLSTATE 55P03.*2 rows kept"):
            proc.flush()
        assert proc.pending == 2
        holder.execute("ROLLBACK")
    proc.flush()
    assert table(database) == [(-SIZE, "setup", 2), (0, "other", 1)]
    proc.close()


def test_a_not_null_column_the_sink_does_not_write_stops_the_worker(
    database: str, proc: BatchingProcessor[Any, Any]
) -> None:
    """A table of another shape refuses every row: not a content error."""
    create_table(proc)
    with conn(database) as c:
        c.execute(f"ALTER TABLE {TABLE} ADD COLUMN extra text NOT NULL DEFAULT ''")
        c.execute(f"ALTER TABLE {TABLE} ALTER COLUMN extra DROP DEFAULT")
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException, match="not retried"):
        proc.flush()
    assert proc.pending == 1


def test_an_id_taken_by_a_hand_inserted_row_is_retried(
    database: str, proc: BatchingProcessor[Any, Any]
) -> None:
    """23505 on the serial primary key: the sequence moves on at every attempt."""
    create_table(proc)  # id 1
    with conn(database) as c:
        c.execute(f"INSERT INTO {TABLE} (id, time_window, word, count) VALUES (2, 0, 'by hand', 1)")
    proc.process(rec("new", 0, 1))
    with pytest.raises(RetriableError, match=r"windowed_counts_pkey.*SQLSTATE 23505"):
        proc.flush()
    assert proc.pending == 1
    proc.flush()  # id 3
    assert table(database) == [(-SIZE, "setup", 1), (0, "by hand", 1), (0, "new", 1)]
