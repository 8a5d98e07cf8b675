"""Write windowed counts to a SQL table: what PostgreSQL and SQLite sinks share.

The Aggregator ends with

    .count(Materialized.as_("windowed-counts"))
    .to_stream()
    .process(windowed_count_sink_from_env())

Each record is `Windowed(word, TimeWindow(start, end)) -> count`; a None count
(a tombstone) is ignored: rows are never deleted. The table, as in the
original Java example:

    windowed_counts(id serial primary key, time_window bigint not null,
                    word text not null, count bigint not null)
    + a unique index on (time_window, word)

`time_window` is the window's start in epoch milliseconds. The table and its
index are created if missing when a connection is opened.

Delivery (at-least-once, idempotent):

- `process()` only remembers `(window start, word) -> count` in a dict, so a
  key updated several times between two commits is written once, with its
  latest count.
- `flush()`, which the stream worker calls at every commit before committing
  the input offsets, upserts the whole batch in one transaction
  (`INSERT ... ON CONFLICT (time_window, word) DO UPDATE SET count =
  EXCLUDED.count`) and empties the batch only once the transaction committed.
  Replaying records (after a crash or a rebalance) writes the same counts
  again: the table converges to the same content.
- A row the database refuses for its content (a word too long for the unique
  index, a value too long or out of range, a character the encoding cannot
  carry, a CHECK or foreign key constraint): retrying it can never succeed,
  and it must not hold back the other rows. When the batch's transaction
  fails so, its halves are written in their own transactions, recursively,
  until each refused row stands alone; every other row is written (a batch
  with nothing refused is still one transaction). `flush()` then empties the
  batch and raises `RecordsRefused`, one `RefusedRecord` per refused row: key
  the word in UTF-8, value the row as compact JSON,
  `{"time_window":<start ms>,"word":"...","count":N}`. The worker hands each
  to the processing exception handler (dead-lettered, counted as a sink
  skip) and goes on with the commit. One warning per such flush: how many,
  and the first error.
- Database unavailable (down, restarting, failing over, a deadlock, a lock
  timeout...), also while isolating refused rows: `flush()` raises
  `RetriableError` and keeps every row (rows already written are written
  again: upserts are idempotent); the worker skips the commit, pauses its
  input and calls `flush()` again with backoff.
- A failure retrying cannot fix (wrong password, missing permission, a table of
  another shape): `flush()` raises `StreamsException` and the worker stops. No
  row is lost: the offsets were not committed, so the records are processed
  again after a restart.

Suppliers and connections: `KStream.process(supplier)` calls `supplier()` once
per task, so `PostgresSink` and `SqliteSink` are suppliers. A supplier keeps
one connection per stream worker thread (a `threading.local`), shared by that
thread's tasks (whose flushes run one after the other on that thread), opened
at the first flush with rows, discarded after any error and re-opened at the
next flush, and closed when the thread's last task closes.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from abc import ABC, abstractmethod
from typing import Any

from topicflow.dsl.windows import Windowed
from topicflow.errors import (
    ConfigError,
    RecordsRefused,
    RefusedRecord,
    RetriableError,
    TopicflowError,
)
from topicflow.processor.api import Processor, ProcessorContext, Record

__all__ = [
    "DEFAULT_TABLE",
    "Row",
    "WindowedCountProcessor",
    "WindowedCountSink",
]

log = logging.getLogger(__name__)

DEFAULT_TABLE = "windowed_counts"

# Lower-case so that the name needs no quoting rules (PostgreSQL folds unquoted
# names to lower case, SQLite ignores case), and short enough that the index
# name `<table>_time_window_word_idx` fits PostgreSQL's 63 characters.
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,41}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# (time_window, word, count): one row of the table.
Row = tuple[int, str, int]

# Log lines show at most this much of a refused row's word (and of its error):
# a word may be 20,000 characters long.
_SAMPLE_CHARS = 40
_ERROR_CHARS = 200


def check_table_name(table: str) -> str:
    if not isinstance(table, str) or not _TABLE_NAME.fullmatch(table):
        raise ConfigError(
            f"table name {table!r} is not allowed: use 1 to 42 lower-case letters, digits "
            "and underscores, starting with a letter or underscore"
        )
    return table


def rows_kept(rows: int) -> str:
    """The end of a RetriableError's message."""
    return f"{rows} row{'s' if rows != 1 else ''} kept for retry"


def not_retried(rows: int) -> str:
    """The end of a StreamsException's message."""
    return (
        "not retried (the worker stops); the input offsets were not committed, so "
        f"the {rows} buffered row{'s' if rows != 1 else ''} will be written after a restart"
    )


def index_name(table: str) -> str:
    return f"{table}_time_window_word_idx"


class _Slot:
    """One thread's connection, shared by the tasks of that thread."""

    __slots__ = ("connection", "failures", "users")

    def __init__(self) -> None:
        self.connection: Any = None
        self.users = 0
        # Consecutive failed writes: one log line per streak, not per attempt.
        self.failures = 0


class WindowedCountSink(ABC):
    """A processor supplier: `sink()` returns a fresh `WindowedCountProcessor` for a task.

    Subclasses say how to connect, create the table, write rows and classify errors;
    their connections are typed `Any` here so that `WindowedCountSink` is not generic.
    """

    def __init__(self, table: str = DEFAULT_TABLE) -> None:
        self.table = check_table_name(table)
        self._local = threading.local()
        # Creating the table from two threads at once can fail in PostgreSQL.
        self._setup_lock = threading.Lock()

    def __call__(self) -> WindowedCountProcessor:
        return WindowedCountProcessor(self)

    # -- what a database implements -------------------------------------------------

    @property
    @abstractmethod
    def where(self) -> str:
        """The database in messages, without secrets: `PostgreSQL at user@host:port/db`."""

    @abstractmethod
    def _open(self) -> Any:
        """A new connection (not in autocommit mode)."""

    @abstractmethod
    def _create_table(self, connection: Any) -> None:
        """Create the table and its unique index if missing, and commit."""

    @abstractmethod
    def _write(self, connection: Any, rows: list[Row]) -> None:
        """Upsert `rows` (unique keys) in one transaction, and commit."""

    @abstractmethod
    def _close(self, connection: Any) -> None:
        """Close the connection; never raises."""

    @abstractmethod
    def _failure(self, error: Exception, during: str, rows: int) -> TopicflowError | None:
        """The RetriableError or StreamsException to raise for `error` (raised while
        `during`: "connecting", "creating the table" or "writing"), or None to let
        `error` through."""

    def _refused_for_content(self, error: Exception) -> bool:
        """Whether `error`, raised while writing rows, means that the database refused
        a row for its content (a value too long, a bad encoding, a constraint):
        writing that row again can never succeed, the other rows can be written.

        Classify by cause, not by the driver's exception class. By default no
        error is: any failure is the whole batch's.
        """
        return False

    def _rollback(self, connection: Any) -> None:
        """Roll back the failed transaction, keeping the connection (raises if it broke)."""
        connection.rollback()

    # -- the per-thread connection --------------------------------------------------

    def write(self, slot: _Slot, rows: list[Row]) -> list[tuple[Row, Exception]]:
        """Write `rows` on the slot's connection (opened if need be); return the rows
        the database refused for their content, each with its error.

        Nothing refused: one transaction. Otherwise the rows are isolated by
        bisection: each half in its own transaction, recursing into a half that
        is refused, until a refused row stands alone; every other row is written.
        Raises RetriableError or StreamsException, also during the isolation (the
        caller keeps every row: written ones are idempotent upserts). The
        connection is discarded on any error but a refused row, so the next call
        starts afresh.
        """
        refused: list[tuple[Row, Exception]] = []
        parts = [rows]  # a stack: the first half is written first, order is kept
        while parts:
            part = parts.pop()
            error = self._attempt(slot, part, len(rows))
            if error is None:
                continue
            if len(part) == 1:
                refused.append((part[0], error))
            else:
                half = len(part) // 2
                parts += (part[half:], part[:half])
        return refused

    def _attempt(self, slot: _Slot, rows: list[Row], kept: int) -> Exception | None:
        """Write `rows` in one transaction: None once committed, the error if the
        database refused it for a row's content; raise RetriableError or
        StreamsException (`kept` rows in the message) for any other failure."""
        during = "writing"
        try:
            connection = slot.connection
            if connection is None:
                during = "connecting"
                connection = slot.connection = self._open()
                during = "creating the table"
                with self._setup_lock:
                    self._create_table(connection)
                during = "writing"
            self._write(connection, rows)
        except BaseException as error:
            if (
                during == "writing"
                and isinstance(error, Exception)
                and self._refused_for_content(error)
            ):
                try:
                    self._rollback(slot.connection)
                except Exception:
                    self._discard(slot)  # the connection broke too: the next attempt reconnects
                return error
            # Whatever happened, the connection may be mid-transaction: drop it.
            self._discard(slot)
            if not isinstance(error, Exception):
                raise
            failure = self._failure(error, during, kept)
            if failure is None:
                raise
            if isinstance(failure, RetriableError):
                if slot.failures == 0:
                    # The worker logs every postponed commit with the message;
                    # this line, once per streak, adds the driver's own words.
                    log.warning(
                        "%s: %s failed, will retry: %s: %s",
                        self.where,
                        during,
                        type(error).__name__,
                        self._detail(error),
                    )
                slot.failures += 1
            raise failure from error
        slot.failures = 0
        return None

    def refusal(self, refused: list[tuple[Row, Exception]]) -> RecordsRefused:
        """The RecordsRefused for rows `write` returned, logged once (count and first error)."""
        (start, word, _count), error = refused[0]
        log.warning(
            "%s refused %d row%s for their content, handed to the processing exception "
            "handler; first: window %d, word %s: %s: %s",
            self.where,
            len(refused),
            "s" if len(refused) != 1 else "",
            start,
            _sample(word),
            type(error).__name__,
            self._summary(error, word),
        )
        return RecordsRefused(self.where, [refused_record(row, error) for row, error in refused])

    def _detail(self, error: Exception) -> str:
        """The error's full text on one line, without secrets."""
        return self._scrub(" ".join(str(error).split()))

    def _scrub(self, text: str) -> str:
        """`text` without secrets (subclasses mask passwords)."""
        return text

    def _summary(self, error: Exception, word: str) -> str:
        """A refused row's error on one line, short, with at most a sample of the word."""
        text = str(error)
        if len(word) > _SAMPLE_CHARS:
            text = text.replace(word, _sample(word))
        text = self._scrub(" ".join(text.split()))
        return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"

    def _attach(self) -> _Slot:
        """The calling thread's slot, with one more user."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
        slot.users += 1
        return slot

    def _detach(self, slot: _Slot) -> None:
        """One user less; the last one closes the connection."""
        slot.users -= 1
        if slot.users <= 0:
            slot.users = 0
            self._discard(slot)

    def _discard(self, slot: _Slot) -> None:
        connection, slot.connection = slot.connection, None
        if connection is not None:
            self._close(connection)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where}, table={self.table!r})"


class WindowedCountProcessor(Processor[Windowed[str], int | None, None, None]):
    """The processor of one task: batches counts, writes them at every commit."""

    def __init__(self, sink: WindowedCountSink) -> None:
        self._sink = sink
        # (window start, word) -> latest count since the last successful flush.
        self._batch: dict[tuple[int, str], int] = {}
        self._slot: _Slot | None = None

    @property
    def pending(self) -> int:
        """How many rows wait for the next successful flush."""
        return len(self._batch)

    def init(self, context: ProcessorContext[None, None]) -> None:
        super().init(context)
        self._bind()

    def process(self, record: Record[Windowed[str], int | None]) -> None:
        count = record.value
        if count is None:
            return  # a tombstone: counts are never deleted
        key = record.key
        if not isinstance(key, Windowed) or not isinstance(key.key, str):
            shown = (
                f"Windowed[{_type_name(key.key)}]" if isinstance(key, Windowed) else _type_name(key)
            )
            raise TypeError(f"windowed count sink: the key must be Windowed[str], not {shown}")
        word, start = key.key, key.window.start
        if type(count) is not int or type(start) is not int:
            raise TypeError(
                f"windowed count sink: count and window start must be int, "
                f"not {_type_name(count)} and {_type_name(start)}"
            )
        if not (_INT64_MIN <= count <= _INT64_MAX and _INT64_MIN <= start <= _INT64_MAX):
            raise ValueError("windowed count sink: count or window start outside 64-bit integers")
        if "\x00" in word:
            raise ValueError("windowed count sink: the word contains a NUL character")
        self._batch[(start, word)] = count

    def flush(self) -> None:
        """Write the batch; keep it unless every row was written or refused.

        Raises RecordsRefused, once everything else is written, if the database
        refused rows for their content; RetriableError or StreamsException (the
        batch kept) if it failed otherwise.
        """
        if not self._batch:
            return
        # Sorted, so that concurrent writers lock rows in the same order.
        rows = sorted((start, word, count) for (start, word), count in self._batch.items())
        refused = self._sink.write(self._bind(), rows)
        self._batch.clear()
        if refused:
            raise self._sink.refusal(refused)

    def close(self) -> None:
        """Write nothing: the task is going away (rebalance or shutdown).

        A batch not yet flushed belongs to input whose offsets were not committed:
        whoever processes these partitions next (this instance after a restart,
        or another one) reads that input again and derives the same counts, so
        dropping the batch loses nothing. Writing here instead could not help:
        when the last flush failed the database is likely still unavailable, and
        close must not block a rebalance or a shutdown retrying it.
        """
        self._batch.clear()
        if self._slot is not None:
            slot, self._slot = self._slot, None
            self._sink._detach(slot)

    def _bind(self) -> _Slot:
        if self._slot is None:
            self._slot = self._sink._attach()
        return self._slot


def refused_record(row: Row, error: Exception) -> RefusedRecord:
    """A refused row as the dead-letter queue gets it: key the word in UTF-8, value
    `{"time_window":<start ms>,"word":"...","count":N}` (compact JSON, UTF-8),
    timestamp the window's start.

    A lone surrogate, which UTF-8 cannot carry, becomes a backslash escape:
    `\\udcff` in the key, the JSON escape (the same character) in the value.
    """
    start, word, count = row
    value = json.dumps(
        {"time_window": start, "word": word, "count": count},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return RefusedRecord(
        word.encode("utf-8", "backslashreplace"),
        value.encode("utf-8", "backslashreplace"),
        error,
        start,  # the dead letter's timestamp: the window's start
    )


def _sample(word: str) -> str:
    """The word quoted, cut to its first characters if long (for log lines)."""
    if len(word) <= _SAMPLE_CHARS:
        return repr(word)
    return f"{word[:_SAMPLE_CHARS]!r}… ({len(word)} characters)"


def _type_name(value: object) -> str:
    return type(value).__name__
