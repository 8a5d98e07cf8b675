"""The generic upsert sink on SQLite, for a user's table of another shape than the example's.

`user_totals(user_id text, total bigint, last_seen bigint)`: rows exact against
the ground truth of the input, a key updated between two commits written once,
tombstones skipped, a refused row isolated with every other row written, the
table and its unique index created, and the checks of a table's definition.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.user_totals import ORDERS, TOTALS, UserTotal, running_totals, total_row, truth_of
from topicflow.errors import ConfigError, RecordsRefused
from topicflow.processor.api import Record
from topicflow.sinks import BatchingProcessor, Row, SqliteSink, Table


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "totals.sqlite3"


@pytest.fixture
def sink(db: Path) -> SqliteSink[str, int | None]:
    return SqliteSink(db, TOTALS, total_row)


@pytest.fixture
def proc(sink: SqliteSink[str, int | None]) -> Iterator[BatchingProcessor[str, int | None]]:
    processor = sink()
    yield processor
    processor.close()


@pytest.fixture
def written(sink: SqliteSink[str, int | None], monkeypatch: pytest.MonkeyPatch) -> list[list[Row]]:
    """The rows of every transaction the sink attempts."""
    transactions: list[list[Row]] = []
    write = sink.backend.write

    def recording(connection: Any, rows: list[Row]) -> None:
        transactions.append(list(rows))
        write(connection, rows)

    monkeypatch.setattr(sink.backend, "write", recording)
    return transactions


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as connection:
        return [tuple(row) for row in connection.execute(sql)]


def totals(db: Path) -> list[UserTotal]:
    return [
        (str(u), int(t), int(s))
        for u, t, s in query(db, "SELECT user_id, total, last_seen FROM user_totals ORDER BY 1")
    ]


def rec(user: str, total: int | None, timestamp: int) -> Record[str, int | None]:
    return Record(user, total, timestamp)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_table_equals_the_ground_truth_of_the_input(
    db: Path, proc: BatchingProcessor[str, int | None], seed: int
) -> None:
    records = running_totals(seed)
    commits = random.Random(seed)
    for record in records:
        proc.process(record)
        if commits.random() < 0.01:
            proc.flush()
    proc.flush()
    assert totals(db) == truth_of(records)


def test_a_key_updated_between_two_commits_is_written_once_with_its_latest_row(
    db: Path, proc: BatchingProcessor[str, int | None], written: list[list[Row]]
) -> None:
    proc.process(rec("ann", 5, 100))
    proc.process(rec("bob", 1, 101))
    proc.process(rec("ann", 7, 102))
    proc.process(rec("ann", 9, 103))
    assert proc.pending == 2
    proc.flush()
    assert written == [[("ann", 9, 103), ("bob", 1, 101)]]
    proc.process(rec("ann", 12, 200))
    proc.flush()
    assert written[1:] == [[("ann", 12, 200)]]
    assert totals(db) == [("ann", 12, 200), ("bob", 1, 101)]
    assert query(db, "SELECT count(*) FROM user_totals") == [(2,)]


def test_tombstones_are_skipped(
    db: Path, proc: BatchingProcessor[str, int | None], written: list[list[Row]]
) -> None:
    proc.process(rec("ann", 5, 100))
    proc.process(rec("bob", 3, 101))
    proc.process(rec("bob", None, 102))  # does not cancel bob's buffered row
    proc.flush()
    proc.process(rec("ann", None, 103))  # deletes nothing
    proc.process(rec("cid", None, 104))  # nothing to write
    assert proc.pending == 0
    proc.flush()
    assert written == [[("ann", 5, 100), ("bob", 3, 101)]]
    assert totals(db) == [("ann", 5, 100), ("bob", 3, 101)]


def test_a_refused_row_is_isolated_and_every_other_row_written(db: Path) -> None:
    # The user's own table, with a constraint of their own.
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.execute(
            "CREATE TABLE user_totals (user_id TEXT NOT NULL, "
            "total BIGINT NOT NULL CHECK (total >= 0), last_seen BIGINT NOT NULL)"
        )
        connection.execute("CREATE UNIQUE INDEX user_totals_user_id_idx ON user_totals (user_id)")
    proc = SqliteSink(db, TOTALS, total_row)()
    good = [rec(f"user{i:02}", i * 10, 1_000 + i) for i in range(40)]
    for record in good[:17]:
        proc.process(record)
    proc.process(rec("user17x", -5, 2_000))
    for record in good[17:]:
        proc.process(record)
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    (refused,) = raised.value.refused
    # The default dead letter: the key columns and the row as JSON objects.
    assert (refused.key, refused.value, refused.timestamp) == (
        b'{"user_id":"user17x"}',
        b'{"user_id":"user17x","total":-5,"last_seen":2000}',
        None,
    )
    assert getattr(refused.error, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_CHECK"
    assert proc.pending == 0
    assert totals(db) == truth_of(good)
    proc.close()


def test_a_null_in_a_column_the_sink_writes_is_refused_for_its_content(db: Path) -> None:
    def row_of(record: Record[str, int | None]) -> Row:
        return (record.key, record.value, record.timestamp)  # a None total: NOT NULL fails

    proc = SqliteSink(db, TOTALS, row_of)()
    proc.process(rec("ann", 1, 100))
    proc.process(rec("bob", None, 101))
    with pytest.raises(RecordsRefused) as raised:
        proc.flush()
    assert [r.key for r in raised.value.refused] == [b'{"user_id":"bob"}']
    assert totals(db) == [("ann", 1, 100)]
    proc.close()


def test_the_table_and_its_unique_index_are_created(
    db: Path, proc: BatchingProcessor[str, int | None]
) -> None:
    proc.process(rec("ann", 1, 100))
    proc.flush()
    columns = query(db, "PRAGMA table_info(user_totals)")
    assert [(c[1], c[2].lower(), c[3], c[5]) for c in columns] == [
        ("user_id", "text", 1, 0),
        ("total", "bigint", 1, 0),
        ("last_seen", "bigint", 1, 0),
    ]
    indexes = {r[1]: r[2] for r in query(db, "PRAGMA index_list(user_totals)")}
    assert indexes == {"user_totals_user_id_idx": 1}
    assert [r[2] for r in query(db, "PRAGMA index_info(user_totals_user_id_idx)")] == ["user_id"]


def test_reserved_names_three_key_columns_and_a_nullable_value(db: Path) -> None:
    def order_row(record: Record[tuple[str, int, str], float | None]) -> Row | None:
        if record.value is None:
            return None
        user, order, region = record.key
        return (user, order, region, record.value, None if record.value else "free")

    proc = SqliteSink(db, ORDERS, order_row)()
    proc.process(Record(("ann", 1, "eu"), 9.5, 0))
    proc.process(Record(("ann", 1, "us"), 0.0, 0))
    proc.process(Record(("ann", 1, "eu"), 12.5, 0))  # same three keys: one row
    proc.flush()
    proc.process(Record(("ann", 1, "us"), 3.0, 0))
    proc.flush()
    proc.close()
    rows = query(db, 'SELECT "user", "order", region, "select", note FROM orders ORDER BY 3')
    assert rows == [("ann", 1, "eu", 12.5, None), ("ann", 1, "us", 3.0, None)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keys": {}}, "at least one key column"),
        ({"keys": {"User": "text"}}, "column name 'User'"),
        ({"keys": {"id": "text; DROP TABLE x"}}, "bad type"),
        ({"keys": {"id": "bigserial"}}, "use serial_id"),
        ({"keys": {"id": "int[]"}}, "bad type"),
        ({"values": {"id": "text"}}, "named twice"),
        ({"nullable": ["id"]}, "only value columns"),
    ],
)
def test_a_bad_table_definition_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    definition: dict[str, Any] = {"keys": {"id": "text"}, "values": {"n": "bigint"}, **kwargs}
    with pytest.raises(ConfigError, match=message):
        Table("t", **definition)
