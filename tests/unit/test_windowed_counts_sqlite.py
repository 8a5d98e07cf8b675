"""The example's windowed_counts on SQLite: batching, upserts, the table, failures, connections."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.windowed_counts import sqlite_sink
from topicflow import Serdes, StreamsBuilder, StreamsConfig
from topicflow.dsl.options import Materialized
from topicflow.dsl.windows import SessionWindow, TimeWindow, TimeWindows, Windowed
from topicflow.errors import ConfigError, RetriableError, StreamsException
from topicflow.processor.api import Record
from topicflow.sinks import BatchingProcessor, SqliteSink
from topicflow.testing import TopologyTestDriver

SIZE = 10_000  # a 10 s window


def rec(word: str, start: int, count: int | None) -> Record[Windowed[str], int | None]:
    return Record(Windowed(word, TimeWindow(start, start + SIZE)), count, start)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "counts.sqlite3"


@pytest.fixture
def sink(db: Path) -> SqliteSink[Any, Any]:
    return sqlite_sink(db)


@pytest.fixture
def proc(sink: SqliteSink[Any, Any]) -> Iterator[BatchingProcessor[Any, Any]]:
    processor = sink()
    yield processor
    processor.close()


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """A connection that commits and closes (sqlite3's own context manager only commits)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def table(db: Path, name: str = "windowed_counts") -> list[tuple[int, str, int]]:
    with connect(db) as conn:
        rows = conn.execute(f"SELECT time_window, word, count FROM {name} ORDER BY 1, 2")
        return [tuple(r) for r in rows]


# -- upserts ------------------------------------------------------------------------


def test_same_key_twice_in_a_batch_is_one_row_with_the_latest_count(
    proc: BatchingProcessor[Any, Any], db: Path
) -> None:
    proc.process(rec("hello", 0, 1))
    proc.process(rec("hello", 0, 2))
    proc.process(rec("world", 0, 1))
    assert proc.pending == 2
    proc.flush()
    assert proc.pending == 0
    assert table(db) == [(0, "hello", 2), (0, "world", 1)]


def test_a_later_flush_updates_the_row(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.process(rec("hello", 0, 1))
    proc.flush()
    proc.process(rec("hello", 0, 5))
    proc.process(rec("hello", SIZE, 1))
    proc.flush()
    assert table(db) == [(0, "hello", 5), (SIZE, "hello", 1)]
    with connect(db) as conn:
        ids = conn.execute("SELECT id FROM windowed_counts ORDER BY time_window").fetchall()
    assert len(ids) == 2  # updated in place, not inserted again


def test_nothing_is_written_before_flush(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.process(rec("hello", 0, 1))
    assert not db.exists()
    proc.flush()
    assert table(db) == [(0, "hello", 1)]


def test_an_empty_flush_does_not_even_connect(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.flush()
    proc.process(rec("gone", 0, None))
    proc.flush()
    assert not db.exists()


def test_tombstones_are_ignored_and_delete_nothing(
    proc: BatchingProcessor[Any, Any], db: Path
) -> None:
    proc.process(rec("hello", 0, 3))
    proc.flush()
    proc.process(rec("hello", 0, None))
    assert proc.pending == 0
    proc.flush()
    assert table(db) == [(0, "hello", 3)]


def test_a_tombstone_does_not_cancel_a_buffered_count(
    proc: BatchingProcessor[Any, Any], db: Path
) -> None:
    proc.process(rec("hello", 0, 3))
    proc.process(rec("hello", 0, None))
    proc.flush()
    assert table(db) == [(0, "hello", 3)]


def test_replaying_the_same_records_gives_the_same_table(
    sink: SqliteSink[Any, Any], db: Path
) -> None:
    records = [rec(w, s, c) for s in (0, SIZE) for c in (1, 2, 3) for w in ("a", "b", "c")]
    first = sink()
    for r in records:
        first.process(r)
    first.flush()
    once = table(db)
    # At-least-once: a restart processes the same input again, in other batches.
    second = sink()
    for i, r in enumerate(records):
        second.process(r)
        if i % 4 == 0:
            second.flush()
    second.flush()
    assert table(db) == once == [(s, w, 3) for s in (0, SIZE) for w in ("a", "b", "c")]
    first.close()
    second.close()


def test_many_keys_in_one_flush(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    for i in range(10_000):
        proc.process(rec(f"word{i}", (i % 7) * SIZE, i))
    proc.flush()
    rows = table(db)
    assert len(rows) == 10_000
    assert sum(r[2] for r in rows) == sum(range(10_000))


def test_session_windows_use_their_start(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.process(Record(Windowed("s", SessionWindow(1234, 5678)), 2, 5678))
    proc.flush()
    assert table(db) == [(1234, "s", 2)]


def test_unicode_words(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.process(rec("naïve", 0, 1))
    proc.process(rec("日本", 0, 2))
    proc.flush()
    assert table(db) == [(0, "naïve", 1), (0, "日本", 2)]


# -- the table ------------------------------------------------------------------------


def test_table_is_created_with_its_columns_and_unique_index(
    proc: BatchingProcessor[Any, Any], db: Path
) -> None:
    proc.process(rec("hello", 0, 1))
    proc.flush()
    with connect(db) as conn:
        columns = [
            (r[1], r[2].lower(), r[3]) for r in conn.execute("PRAGMA table_info(windowed_counts)")
        ]
        indexes = {r[1]: r[2] for r in conn.execute("PRAGMA index_list(windowed_counts)")}
        indexed = [
            r[2] for r in conn.execute("PRAGMA index_info(windowed_counts_time_window_word_idx)")
        ]
        ddl = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'windowed_counts'"
        ).fetchone()
    assert columns == [
        ("id", "integer", 0),
        ("time_window", "bigint", 1),
        ("word", "text", 1),
        ("count", "bigint", 1),
    ]
    assert indexes["windowed_counts_time_window_word_idx"] == 1  # unique
    assert indexed == ["time_window", "word"]
    assert "AUTOINCREMENT" in ddl[0]


def test_an_existing_table_is_kept(db: Path) -> None:
    with connect(db) as conn:
        conn.execute(
            "CREATE TABLE windowed_counts (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "time_window BIGINT NOT NULL, word TEXT NOT NULL, count BIGINT NOT NULL)"
        )
        conn.execute("CREATE UNIQUE INDEX old_idx ON windowed_counts (time_window, word)")
        conn.execute("INSERT INTO windowed_counts (time_window, word, count) VALUES (0, 'a', 7)")
    sink = sqlite_sink(db)
    proc = sink()
    proc.process(rec("b", 0, 1))
    proc.flush()
    proc.close()
    assert table(db) == [(0, "a", 7), (0, "b", 1)]


def test_custom_table_name(db: Path) -> None:
    proc = sqlite_sink(db, table="counts_2")()
    proc.process(rec("a", 0, 1))
    proc.flush()
    proc.close()
    assert table(db, "counts_2") == [(0, "a", 1)]


@pytest.mark.parametrize(
    "name", ["", "Counts", "counts; DROP TABLE x", "1counts", "a" * 43, "schema.table"]
)
def test_bad_table_names_are_config_errors(db: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="table name"):
        sqlite_sink(db, table=name)


# -- failures -------------------------------------------------------------------------


def test_a_locked_database_is_retriable_and_keeps_the_rows(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = sqlite_sink(db, timeout=0.05)
    proc = sink()
    proc.process(rec("a", 0, 1))
    proc.flush()  # creates the table
    proc.process(rec("a", 0, 2))
    proc.process(rec("b", 0, 1))
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.WARNING, logger="topicflow.sinks"):
            for _ in range(3):
                with pytest.raises(RetriableError) as raised:
                    proc.flush()
        assert str(raised.value) == (
            f"SQLite at {db} unavailable: database is locked; 2 rows kept for retry"
        )
        assert proc.pending == 2
        # One log line for the streak, not one per attempt.
        assert len([r for r in caplog.records if r.name.startswith("topicflow.sinks")]) == 1
        # Meanwhile more input arrives: the latest count wins.
        proc.process(rec("b", 0, 4))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    proc.flush()
    assert proc.pending == 0
    assert table(db) == [(0, "a", 2), (0, "b", 4)]
    proc.close()


def test_a_table_of_another_shape_stops_the_worker_without_losing_rows(db: Path) -> None:
    with connect(db) as conn:
        conn.execute("CREATE TABLE windowed_counts (id INTEGER PRIMARY KEY, word TEXT, n INTEGER)")
    proc = sqlite_sink(db)()
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException) as raised:
        proc.flush()
    message = str(raised.value)
    assert "\n" not in message
    assert "time_window" in message and "not retried" in message
    assert proc.pending == 1
    proc.close()


def test_a_missing_folder_stops_the_worker(tmp_path: Path) -> None:
    proc = sqlite_sink(tmp_path / "no" / "such" / "dir.sqlite3")()
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException, match="check that the folder exists"):
        proc.flush()
    assert proc.pending == 1


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("word", 1, TypeError),
        (Windowed(42, TimeWindow(0, SIZE)), 1, TypeError),
        (Windowed("w", TimeWindow(0, SIZE)), "1", TypeError),
        (Windowed("w", TimeWindow(0, SIZE)), True, TypeError),
        (Windowed("w", TimeWindow(0, SIZE)), 2**63, ValueError),
        (Windowed("w\x00", TimeWindow(0, SIZE)), 1, ValueError),
    ],
)
def test_bad_records_raise_in_process(
    proc: BatchingProcessor[Any, Any], key: Any, value: Any, error: type[Exception]
) -> None:
    # Raised from process(), the processing exception handler decides (fail or skip).
    with pytest.raises(error, match="windowed count sink"):
        proc.process(Record(key, value, 0))
    assert proc.pending == 0


# -- suppliers and connections ----------------------------------------------------------


def test_each_call_supplies_a_fresh_processor(sink: SqliteSink[Any, Any]) -> None:
    assert sink() is not sink()


def connection_of(proc: BatchingProcessor[Any, Any]) -> Any:
    slot = proc._bind()
    return slot.connection


def test_tasks_of_a_thread_share_one_connection_closed_by_the_last(
    sink: SqliteSink[Any, Any], db: Path
) -> None:
    a, b = sink(), sink()
    a.process(rec("a", 0, 1))
    b.process(rec("b", 0, 1))
    a.flush()
    b.flush()
    assert connection_of(a) is connection_of(b) is not None
    conn = connection_of(a)
    a.close()
    conn.execute("SELECT 1")  # still open: b uses it
    b.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")
    assert table(db) == [(0, "a", 1), (0, "b", 1)]


def test_threads_have_their_own_connections(sink: SqliteSink[Any, Any], db: Path) -> None:
    connections: list[Any] = []

    def work(word: str) -> None:
        proc = sink()
        proc.process(rec(word, 0, 1))
        proc.flush()
        connections.append(connection_of(proc))
        proc.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in connections}) == 3
    assert table(db) == [(0, "a", 1), (0, "b", 1), (0, "c", 1)]


def test_close_writes_nothing(proc: BatchingProcessor[Any, Any], db: Path) -> None:
    proc.process(rec("a", 0, 1))
    proc.close()
    assert not db.exists()


# -- through the DSL --------------------------------------------------------------------


def test_the_aggregator_topology_writes_windowed_counts(db: Path) -> None:
    builder = StreamsBuilder()
    (
        builder.stream("words")
        .group_by_key()
        .windowed_by(TimeWindows.of_size_with_no_grace(timedelta(milliseconds=SIZE)))
        .count(Materialized.as_("windowed-counts"))
        .to_stream()
        .process(sqlite_sink(db))
    )
    config = StreamsConfig(
        application_id="sink-test",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
    )
    with TopologyTestDriver(builder.build(), config) as driver:
        words = driver.create_input_topic("words", Serdes.String(), Serdes.String())
        for word, ts in [("a", 1000), ("a", 2000), ("b", 3000), ("a", SIZE + 1)]:
            words.pipe_input(word, word, timestamp=ts)
    assert table(db) == [(0, "a", 2), (0, "b", 1), (SIZE, "a", 1)]
