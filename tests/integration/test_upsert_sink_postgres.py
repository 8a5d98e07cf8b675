"""The generic upsert sink on the real PostgreSQL, for a user's table of another shape.

`user_totals(user_id text, total bigint, last_seen bigint)`, as the SQLite
unit tests have it: rows exact against the ground truth of the input, a key
updated between two commits written once, tombstones skipped, a refused row
isolated with every other row written. Each test writes to a fresh database.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.user_totals import ORDERS, TOTALS, UserTotal, running_totals, total_row, truth_of
from topicflow.errors import RecordsRefused
from topicflow.processor.api import Record
from topicflow.sinks import BatchingProcessor, PostgresSink, Row
from topicflow.sinks.postgres import RESERVED


def query(url: str, statement: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as connection:
        return [tuple(row) for row in connection.execute(statement)]


def execute(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(statement)


def totals(url: str) -> list[UserTotal]:
    return [
        (str(u), int(t), int(s))
        for u, t, s in query(url, "SELECT user_id, total, last_seen FROM user_totals ORDER BY 1")
    ]


@pytest.fixture
def sink(database: str) -> PostgresSink[str, int | None]:
    return PostgresSink(database, TOTALS, total_row)


@pytest.fixture
def proc(sink: PostgresSink[str, int | None]) -> Iterator[BatchingProcessor[str, int | None]]:
    processor = sink()
    yield processor
    processor.close()


@pytest.fixture
def written(
    sink: PostgresSink[str, int | None], monkeypatch: pytest.MonkeyPatch
) -> list[list[Row]]:
    """The rows of every transaction the sink attempts."""
    transactions: list[list[Row]] = []
    write = sink.backend.write

    def recording(connection: Any, rows: list[Row]) -> None:
        transactions.append(list(rows))
        write(connection, rows)

    monkeypatch.setattr(sink.backend, "write", recording)
    return transactions


def rec(user: str, total: int | None, timestamp: int) -> Record[str, int | None]:
    return Record(user, total, timestamp)


def test_the_table_equals_the_ground_truth_of_the_input(
    database: str, proc: BatchingProcessor[str, int | None]
) -> None:
    records = running_totals(seed=7, records=5_000, users=200)
    commits = random.Random(7)
    for record in records:
        proc.process(record)
        if commits.random() < 0.005:
            proc.flush()
    proc.flush()
    assert totals(database) == truth_of(records)
    # Replayed from the start (a restart before the last commit): the same table.
    for record in records:
        proc.process(record)
    proc.flush()
    assert totals(database) == truth_of(records)


def test_a_key_updated_between_two_commits_is_written_once_with_its_latest_row(
    database: str, proc: BatchingProcessor[str, int | None], written: list[list[Row]]
) -> None:
    proc.process(rec("ann", 5, 100))
    proc.process(rec("bob", 1, 101))
    proc.process(rec("ann", 7, 102))
    proc.process(rec("ann", 9, 103))
    proc.flush()
    assert written == [[("ann", 9, 103), ("bob", 1, 101)]]
    proc.process(rec("ann", 12, 200))
    proc.flush()
    assert totals(database) == [("ann", 12, 200), ("bob", 1, 101)]


def test_tombstones_are_skipped(
    database: str, proc: BatchingProcessor[str, int | None], written: list[list[Row]]
) -> None:
    proc.process(rec("ann", 5, 100))
    proc.process(rec("bob", 3, 101))
    proc.process(rec("bob", None, 102))
    proc.flush()
    proc.process(rec("ann", None, 103))
    proc.flush()
    assert written == [[("ann", 5, 100), ("bob", 3, 101)]]
    assert totals(database) == [("ann", 5, 100), ("bob", 3, 101)]


def test_a_refused_row_is_isolated_and_every_other_row_written(
    database: str, proc: BatchingProcessor[str, int | None], written: list[list[Row]]
) -> None:
    proc.process(rec("setup", 0, 0))
    proc.flush()  # creates the table
    execute(database, "ALTER TABLE user_totals ADD CONSTRAINT not_negative CHECK (total >= 0)")
    good = [rec(f"user{i:03}", i * 10, 1_000 + i) for i in range(300)]
    for record in good[:150]:
        proc.process(record)
    proc.process(rec("user149x", -5, 2_000))
    for record in good[150:]:
        proc.process(record)
    written.clear()
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    (refused,) = raised.value.refused
    assert (refused.key, refused.value, refused.timestamp) == (
        b'{"user_id":"user149x"}',
        b'{"user_id":"user149x","total":-5,"last_seen":2000}',
        None,
    )
    assert getattr(refused.error, "sqlstate", None) == "23514"
    assert proc.pending == 0
    assert totals(database) == sorted([("setup", 0, 0), *truth_of(good)])
    # The whole batch, then halves down to the refused row: not one per row.
    assert len(written[0]) == 301 and len(written) <= 2 * 9 + 1


def test_a_null_in_a_column_the_sink_writes_is_refused_for_its_content(database: str) -> None:
    def row_of(record: Record[str, int | None]) -> Row:
        return (record.key, record.value, record.timestamp)

    proc = PostgresSink(database, TOTALS, row_of)()
    proc.process(rec("ann", 1, 100))
    proc.process(rec("bob", None, 101))
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [(r.key, getattr(r.error, "sqlstate", None)) for r in raised.value.refused] == [
        (b'{"user_id":"bob"}', "23502")
    ]
    assert totals(database) == [("ann", 1, 100)]
    proc.close()


def test_the_table_and_its_unique_index_are_created(
    database: str, proc: BatchingProcessor[str, int | None]
) -> None:
    proc.process(rec("ann", 1, 100))
    proc.flush()
    columns = query(
        database,
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'user_totals' ORDER BY ordinal_position",
    )
    assert columns == [
        ("user_id", "text", "NO"),
        ("total", "bigint", "NO"),
        ("last_seen", "bigint", "NO"),
    ]
    (index,) = query(
        database, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'user_totals'"
    )
    assert index[0] == "user_totals_user_id_idx"
    assert index[1].startswith("CREATE UNIQUE INDEX") and index[1].endswith("(user_id)")


def test_reserved_names_three_key_columns_and_a_nullable_value(database: str) -> None:
    def order_row(record: Record[tuple[str, int, str], float | None]) -> Row | None:
        if record.value is None:
            return None
        user, order, region = record.key
        return (user, order, region, record.value, None if record.value else "free")

    proc = PostgresSink(database, ORDERS, order_row)()
    proc.process(Record(("ann", 1, "eu"), 9.5, 0))
    proc.process(Record(("ann", 1, "us"), 0.0, 0))
    proc.process(Record(("ann", 1, "eu"), 12.5, 0))
    proc.flush()
    proc.process(Record(("ann", 1, "us"), 3.0, 0))
    proc.flush()
    proc.close()
    rows = query(database, 'SELECT "user", "order", region, "select", note FROM orders ORDER BY 3')
    assert rows == [("ann", 1, "eu", 12.5, None), ("ann", 1, "us", 3.0, None)]


def test_the_reserved_words_are_the_servers(database: str) -> None:
    """Every keyword the server refuses as a bare column name is quoted."""
    server = {
        str(word)
        for (word,) in query(
            database, "SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')"
        )
    }
    assert server <= RESERVED
