"""The example's windowed counts through the PostgreSQL sink, on the real PostgreSQL 15 of
`topicflow dev up`.

Every test writes its own table (`windowed_counts_<hex>`), dropped afterwards.
One test stops and restarts the server; it always restarts it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import topicflow_dev
from services.windowed_counts import postgres_sink
from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import RetriableError, StreamsException
from topicflow.processor.api import Record
from topicflow.sinks import BatchingProcessor, PostgresSink
from topicflow.sinks.database_url import DatabaseUrl
from topicflow_dev import DevEnv

SIZE = 10_000
log = logging.getLogger(__name__)


def rec(word: str, start: int, count: int | None) -> Record[Windowed[str], int | None]:
    return Record(Windowed(word, TimeWindow(start, start + SIZE)), count, start)


@pytest.fixture
def table_name(dev_env: DevEnv, unique: str) -> Iterator[str]:
    name = f"windowed_counts_{unique}"
    yield name
    with psycopg.connect(dev_env.database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def sink(dev_env: DevEnv, table_name: str) -> PostgresSink[Any, Any]:
    return postgres_sink(dev_env.database_url, table_name)


@pytest.fixture
def proc(sink: PostgresSink[Any, Any]) -> Iterator[BatchingProcessor[Any, Any]]:
    processor = sink()
    yield processor
    processor.close()


def rows(dev_env: DevEnv, table: str) -> list[tuple[int, str, int]]:
    with psycopg.connect(dev_env.database_url) as conn:
        result = conn.execute(f"SELECT time_window, word, count FROM {table} ORDER BY 1, 2")
        return [(r[0], r[1], r[2]) for r in result]


def test_writes_and_upserts(
    dev_env: DevEnv, table_name: str, proc: BatchingProcessor[Any, Any]
) -> None:
    proc.process(rec("hello", 0, 1))
    proc.process(rec("hello", 0, 2))  # same batch: one row, latest count
    proc.process(rec("world", 0, 1))
    proc.process(rec("gone", 0, None))  # tombstone: ignored
    proc.flush()
    assert rows(dev_env, table_name) == [(0, "hello", 2), (0, "world", 1)]
    proc.process(rec("hello", 0, 7))
    proc.process(rec("hello", SIZE, 1))
    proc.flush()
    assert rows(dev_env, table_name) == [(0, "hello", 7), (0, "world", 1), (SIZE, "hello", 1)]
    proc.flush()  # nothing pending: nothing written


def test_table_and_unique_index_are_created(
    dev_env: DevEnv, table_name: str, proc: BatchingProcessor[Any, Any]
) -> None:
    proc.process(rec("a", 0, 1))
    proc.flush()
    with psycopg.connect(dev_env.database_url) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table_name,),
        ).fetchall()
        index = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s AND indexname = %s",
            (table_name, f"{table_name}_time_window_word_idx"),
        ).fetchone()
    assert [c[:3] for c in columns] == [
        ("id", "integer", "NO"),
        ("time_window", "bigint", "NO"),
        ("word", "text", "NO"),
        ("count", "bigint", "NO"),
    ]
    assert str(columns[0][3]).startswith("nextval(")  # serial
    assert index is not None
    assert index[0].startswith("CREATE UNIQUE INDEX") and "(time_window, word)" in index[0]


def test_replay_converges(dev_env: DevEnv, table_name: str, sink: PostgresSink[Any, Any]) -> None:
    records = [rec(w, s, c) for s in (0, SIZE) for c in (1, 2) for w in ("a", "b")]
    for batch_every in (len(records), 3):
        proc = sink()
        for i, r in enumerate(records, 1):
            proc.process(r)
            if i % batch_every == 0:
                proc.flush()
        proc.flush()
        proc.close()
        assert rows(dev_env, table_name) == [
            (0, "a", 2),
            (0, "b", 2),
            (SIZE, "a", 2),
            (SIZE, "b", 2),
        ]


def test_database_down_then_back(dev_env: DevEnv, table_name: str) -> None:
    """Stop PostgreSQL: flush raises RetriableError and keeps the rows; restart: they land."""
    # Two suppliers: one whose connection is open when the server stops, one
    # that has never connected.
    connected, fresh = (
        postgres_sink(dev_env.database_url, table_name),
        postgres_sink(dev_env.database_url, table_name),
    )
    a, b = connected(), fresh()
    a.process(rec("before", 0, 1))
    a.flush()
    a.process(rec("a", 0, 1))
    a.process(rec("a", 0, 2))
    b.process(rec("b", 0, 3))
    where = "PostgreSQL at topicflow@127.0.0.1:15432/topicflow"
    messages: list[str] = []
    assert topicflow_dev.stop_postgres()
    try:
        for proc in (a, a, b):
            with pytest.raises(RetriableError) as raised:
                proc.flush()
            messages.append(str(raised.value))
        assert a.pending == 1 and b.pending == 1
        # More input while down: kept, latest count wins.
        a.process(rec("a", 0, 5))
        a.process(rec("a2", 0, 1))
        with pytest.raises(RetriableError) as raised:
            a.flush()
        messages.append(str(raised.value))
    finally:
        assert topicflow_dev.start_postgres()
    log.info("messages while PostgreSQL was down: %s", messages)
    for message in messages:
        assert message.startswith(f"{where} unavailable: ")
        assert "\n" not in message
        # The dev password is "topicflow", also the user's and database's name:
        # it appears in the redacted address only.
        assert "topicflow" not in message.removeprefix(where)
    # The open connection sees the shutdown; the next attempts cannot connect.
    assert messages[1] == f"{where} unavailable: connection refused; 1 row kept for retry"
    assert messages[2] == f"{where} unavailable: connection refused; 1 row kept for retry"
    assert messages[3] == f"{where} unavailable: connection refused; 2 rows kept for retry"
    a.flush()
    b.flush()
    assert (a.pending, b.pending) == (0, 0)
    assert rows(dev_env, table_name) == [(0, "a", 5), (0, "a2", 1), (0, "b", 3), (0, "before", 1)]
    a.close()
    b.close()


def test_password_never_in_messages(dev_env: DevEnv, table_name: str) -> None:
    secret = "Zq9-very-secret"
    url = f"postgres://topicflow:{secret}@127.0.0.1:1/topicflow"  # nothing listens on port 1
    proc = postgres_sink(url, table_name)()
    proc.process(rec("a", 0, 1))
    with pytest.raises(RetriableError) as raised:
        proc.flush()
    assert secret not in str(raised.value)
    assert str(raised.value) == (
        "PostgreSQL at topicflow@127.0.0.1:1/topicflow unavailable: connection refused; "
        "1 row kept for retry"
    )
    # A wrong password: the server refuses it, retrying cannot help.
    port = DatabaseUrl.parse(dev_env.database_url).port
    url = f"postgres://topicflow:{secret}@127.0.0.1:{port}/topicflow"
    proc = postgres_sink(url, table_name)()
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException) as failed:
        proc.flush()
    assert secret not in str(failed.value)
    assert "password authentication failed" in str(failed.value)
    assert "check the user and password" in str(failed.value)
    assert proc.pending == 1


def test_a_dead_server_fails_fast(table_name: str) -> None:
    """A server that accepts TCP connections but never answers: connect_timeout applies."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        sink = postgres_sink(f"postgres://u:p@127.0.0.1:{port}/d", table_name, connect_timeout=1)
        proc = sink()
        proc.process(rec("a", 0, 1))
        started = time.monotonic()
        with pytest.raises(RetriableError, match=r"no answer within 1 s \(connect_timeout\)"):
            proc.flush()
        assert time.monotonic() - started < 5
        assert proc.pending == 1


def test_a_table_of_another_shape_stops_the_worker(
    dev_env: DevEnv, table_name: str, proc: BatchingProcessor[Any, Any]
) -> None:
    with psycopg.connect(dev_env.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table_name} (id serial PRIMARY KEY, word text, n bigint)")
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException) as raised:
        proc.flush()
    message = str(raised.value)
    assert "time_window" in message and "not retried" in message and "\n" not in message
    assert proc.pending == 1


def test_a_table_without_the_unique_index_stops_the_worker(
    dev_env: DevEnv, table_name: str, proc: BatchingProcessor[Any, Any]
) -> None:
    with psycopg.connect(dev_env.database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table_name} (id serial PRIMARY KEY, time_window bigint NOT NULL, "
            "word text NOT NULL, count bigint NOT NULL)"
        )
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException, match=r"unique index on \(time_window, word\)"):
        proc.flush()


def test_a_permission_error_stops_the_worker(dev_env: DevEnv, table_name: str) -> None:
    # Tables would go to pg_catalog, where nobody but a superuser may create any.
    url = f"{dev_env.database_url}?options=-c%20search_path%3Dpg_catalog"
    proc = postgres_sink(url, table_name)()
    proc.process(rec("a", 0, 1))
    with pytest.raises(StreamsException, match=r"permission denied.*grant the user") as raised:
        proc.flush()
    assert raised.value.args[0].startswith(
        "PostgreSQL at topicflow@127.0.0.1:15432/topicflow: creating the table failed: "
    )
    assert proc.pending == 1


def test_a_dropped_table_is_recreated_on_retry(
    dev_env: DevEnv, table_name: str, proc: BatchingProcessor[Any, Any]
) -> None:
    proc.process(rec("a", 0, 1))
    proc.flush()
    with psycopg.connect(dev_env.database_url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table_name}")
    proc.process(rec("b", 0, 1))
    with pytest.raises(RetriableError, match="does not exist"):
        proc.flush()
    proc.flush()  # a new connection creates the table again
    assert rows(dev_env, table_name) == [(0, "b", 1)]


def test_tasks_of_a_thread_share_one_connection(
    dev_env: DevEnv, table_name: str, sink: PostgresSink[Any, Any]
) -> None:
    a, b = sink(), sink()
    a.process(rec("a", 0, 1))
    b.process(rec("b", 0, 1))
    a.flush()
    b.flush()
    connection: Any = a._bind().connection
    assert connection is b._bind().connection
    assert not connection.closed
    a.close()
    assert not connection.closed
    b.close()
    assert connection.closed


def test_flush_of_10k_rows(
    dev_env: DevEnv,
    table_name: str,
    proc: BatchingProcessor[Any, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    n = 10_000
    timings = []
    for attempt in range(2):  # insert, then update every row
        for i in range(n):
            proc.process(rec(f"word{i}", (i % 60) * SIZE, i + attempt))
        started = time.perf_counter()
        proc.flush()
        timings.append(time.perf_counter() - started)
    with psycopg.connect(dev_env.database_url) as conn:
        count, total = conn.execute(
            f"SELECT count(*), sum(count) FROM {table_name}"
        ).fetchone() or (0, 0)
    assert (count, total) == (n, sum(range(1, n + 1)))
    with capsys.disabled():
        print(
            f"\n10k-row flush: insert {timings[0] * 1000:.0f} ms ({n / timings[0]:,.0f} rows/s), "
            f"update {timings[1] * 1000:.0f} ms ({n / timings[1]:,.0f} rows/s)"
        )
    assert max(timings) < 10  # generous: a loaded CI machine


def test_batch_write_methods_compared(
    dev_env: DevEnv, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Why the sink uses one `unnest` statement rather than `executemany` (pipeline mode)."""
    n = 10_000
    data = [((i % 60) * SIZE, f"word{i}", i) for i in range(n)]
    conflict = "ON CONFLICT (time_window, word) DO UPDATE SET count = EXCLUDED.count"
    best: dict[str, float] = {}
    with psycopg.connect(dev_env.database_url) as conn:
        for method in ("executemany", "unnest") * 3:
            table = f"{table_name}_{method}"
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(
                f"CREATE TABLE {table} (id serial PRIMARY KEY, time_window bigint NOT NULL, "
                "word text NOT NULL, count bigint NOT NULL)"
            )
            conn.execute(f"CREATE UNIQUE INDEX ON {table} (time_window, word)")
            conn.commit()
            started = time.perf_counter()
            with conn.cursor() as cursor:
                if method == "executemany":
                    cursor.executemany(
                        f"INSERT INTO {table} (time_window, word, count) VALUES (%s, %s, %s) "
                        + conflict,
                        data,
                    )
                else:
                    cursor.execute(
                        f"INSERT INTO {table} (time_window, word, count) SELECT * FROM "
                        "unnest(%s::bigint[], %s::text[], %s::bigint[]) " + conflict,
                        ([r[0] for r in data], [r[1] for r in data], [r[2] for r in data]),
                    )
            conn.commit()
            elapsed = time.perf_counter() - started
            best[method] = min(best.get(method, elapsed), elapsed)
            conn.execute(f"DROP TABLE {table}")
            conn.commit()
    with capsys.disabled():
        print(
            "\n10k-row upsert, best of 3: "
            + ", ".join(f"{m} {t * 1000:.0f} ms ({n / t:,.0f} rows/s)" for m, t in best.items())
        )
