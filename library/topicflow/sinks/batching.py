"""Sinks that write rows to a database in batches, one batch per commit.

A `BatchingSink` is a processor supplier (`KStream.process(sink)` calls
`sink()` once per task) for a `Table`: a function maps each record to a row,
and a `SinkBackend` (PostgreSQL, SQLite) opens connections, creates the table
and writes batches.

Delivery (at-least-once, idempotent):

- `process()` maps the record to a row (None: skipped, e.g. a tombstone, and a
  row already buffered for that key stays) and remembers it by its key
  columns, so a key updated several times between two commits is written
  once, with its latest row.
- `flush()`, which the stream worker calls at every commit before committing
  the input offsets, writes the whole batch in one transaction (an upsert:
  replaying records after a crash or a rebalance writes the same rows again,
  the table converges to the same content) and empties the batch only once
  the transaction committed.
- A row the database refuses for its content (a value too long or out of
  range, a character the encoding cannot carry, a CHECK or foreign key
  constraint): retrying it can never succeed, and it must not hold back the
  other rows. When the batch's transaction fails so, its halves are written in
  their own transactions, recursively, until each refused row stands alone;
  every other row is written (a batch with nothing refused is still one
  transaction). `flush()` then empties the batch and raises `RecordsRefused`,
  one dead letter per refused row (`Table.refused_record` unless the sink
  says otherwise); the worker hands each to the processing exception handler
  and goes on with the commit. One warning per such flush: how many, and the
  first error.
- Database unavailable (down, restarting, failing over, a deadlock, a lock
  timeout...), also while isolating refused rows: `flush()` raises
  `RetriableError` and keeps every row (rows already written are written
  again: upserts are idempotent); the worker skips the commit, pauses its
  input and calls `flush()` again with backoff.
- A failure retrying cannot fix (wrong password, missing permission, a table
  of another shape): `flush()` raises `StreamsException` and the worker stops.
  No row is lost: the offsets were not committed, so the records are
  processed again after a restart.

Connections: one per stream worker thread (a `threading.local`), shared by
that thread's tasks (whose flushes run one after the other on that thread),
opened at the first flush with rows, discarded after any error and re-opened
at the next flush, and closed when the thread's last task closes.
"""

from __future__ import annotations

import logging
import operator
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from topicflow.errors import RecordsRefused, RefusedRecord, RetriableError
from topicflow.processor.api import Processor, ProcessorContext, Record
from topicflow.sinks.backend import SinkBackend
from topicflow.sinks.table import Row, Table

__all__ = [
    "BatchingProcessor",
    "BatchingSink",
    "RefusedRecordFunction",
    "RowFunction",
]

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")

# A record (key, value, timestamp, headers) -> its row, or None to skip the record.
RowFunction = Callable[[Record[K, V]], Row | None]
# A refused row and the database's error -> the dead letter.
RefusedRecordFunction = Callable[[Row, Exception], RefusedRecord]

# Log lines show at most this much of a refused row's text values (and of its
# error): a word may be 20,000 characters long.
_SAMPLE_CHARS = 40
_ERROR_CHARS = 200


class _Slot:
    """One thread's connection, shared by the tasks of that thread."""

    __slots__ = ("connection", "failures", "users")

    def __init__(self) -> None:
        self.connection: Any = None
        self.users = 0
        # Consecutive failed writes: one log line per streak, not per attempt.
        self.failures = 0


class BatchingSink(Generic[K, V]):
    """A processor supplier: `sink()` returns a fresh `BatchingProcessor` for a task.

    `row_of(record)` maps a record to a row of `table` (None to skip it); it
    may raise for a record it cannot map (the processing exception handler
    decides). `refused_record` makes a refused row's dead letter (by default
    `table.refused_record`: the key columns and the row as JSON objects).
    """

    def __init__(
        self,
        backend: SinkBackend[Any],
        table: Table,
        row_of: RowFunction[K, V],
        *,
        refused_record: RefusedRecordFunction | None = None,
    ) -> None:
        self.backend = backend
        self.table = table
        self.row_of = row_of
        self.refused_record = refused_record or table.refused_record
        self._local = threading.local()
        # Creating the table from two threads at once can fail in PostgreSQL.
        self._setup_lock = threading.Lock()

    def __call__(self) -> BatchingProcessor[K, V]:
        return BatchingProcessor(self)

    @property
    def where(self) -> str:
        return self.backend.where

    # -- writing ----------------------------------------------------------------------

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
        backend = self.backend
        during = "writing"
        try:
            connection = slot.connection
            if connection is None:
                during = "connecting"
                connection = slot.connection = backend.open()
                during = "creating the table"
                with self._setup_lock:
                    backend.create_table(connection)
                during = "writing"
            backend.write(connection, rows)
        except BaseException as error:
            if (
                during == "writing"
                and isinstance(error, Exception)
                and backend.refused_for_content(error)
            ):
                try:
                    backend.rollback(slot.connection)
                except Exception:
                    self._discard(slot)  # the connection broke too: the next attempt reconnects
                return error
            # Whatever happened, the connection may be mid-transaction: drop it.
            self._discard(slot)
            if not isinstance(error, Exception):
                raise
            failure = backend.failure(error, during, kept)
            if failure is None:
                raise
            if isinstance(failure, RetriableError):
                if slot.failures == 0:
                    # The worker logs every postponed commit with the message;
                    # this line, once per streak, adds the driver's own words.
                    log.warning(
                        "%s: %s failed, will retry: %s: %s",
                        backend.where,
                        during,
                        type(error).__name__,
                        backend.scrub(" ".join(str(error).split())),
                    )
                slot.failures += 1
            raise failure from error
        slot.failures = 0
        return None

    def refusal(self, refused: list[tuple[Row, Exception]]) -> RecordsRefused:
        """The RecordsRefused for rows `write` returned, logged once (count and first error)."""
        row, error = refused[0]
        first = ", ".join(
            f"{column}={_sample(value)}"
            for column, value in zip(self.table.key_columns, row, strict=False)
        )
        log.warning(
            "%s refused %d row%s for their content, handed to the processing exception "
            "handler; first: %s: %s: %s",
            self.where,
            len(refused),
            "s" if len(refused) != 1 else "",
            first,
            type(error).__name__,
            self._summary(error, row),
        )
        return RecordsRefused(self.where, [self.refused_record(row, e) for row, e in refused])

    def _summary(self, error: Exception, row: Row) -> str:
        """A refused row's error on one line, short, with at most samples of long texts."""
        text = str(error)
        for value in row:
            if isinstance(value, str) and len(value) > _SAMPLE_CHARS:
                text = text.replace(value, _sample(value))
        text = self.backend.scrub(" ".join(text.split()))
        return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"

    # -- the per-thread connection --------------------------------------------------

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
            self.backend.close(connection)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where}, table={self.table.name!r})"


class BatchingProcessor(Processor[K, V, None, None]):
    """The processor of one task: batches rows by key, writes them at every commit."""

    # Processor.process, as a per-instance function (_process_function's): mypy
    # sees a method overridden by an attribute, which is what it is meant to be.
    process: Callable[[Record[K, V]], None]  # type: ignore[assignment]

    def __init__(self, sink: BatchingSink[K, V]) -> None:
        self._sink = sink
        # The key columns' values -> the latest row since the last successful flush.
        self._batch: dict[Any, Row] = {}
        self._slot: _Slot | None = None
        # The hot path, bound once: the row function, a dict assignment, nothing more.
        self.process = _process_function(self._batch, sink.row_of, len(sink.table.keys))

    @property
    def pending(self) -> int:
        """How many rows wait for the next successful flush."""
        return len(self._batch)

    def init(self, context: ProcessorContext[None, None]) -> None:
        super().init(context)
        self._bind()

    def flush(self) -> None:
        """Write the batch; keep it unless every row was written or refused.

        Raises RecordsRefused, once everything else is written, if the database
        refused rows for their content; RetriableError or StreamsException (the
        batch kept) if it failed otherwise.
        """
        batch = self._batch
        if not batch:
            return
        try:
            # Sorted by key, so that concurrent writers lock rows in the same order.
            rows = [batch[key] for key in sorted(batch)]
        except TypeError:  # keys that do not compare (None, mixed types): as they came
            rows = list(batch.values())
        refused = self._sink.write(self._bind(), rows)
        batch.clear()
        if refused:
            raise self._sink.refusal(refused)

    def close(self) -> None:
        """Write nothing: the task is going away (rebalance or shutdown).

        A batch not yet flushed belongs to input whose offsets were not committed:
        whoever processes these partitions next (this instance after a restart,
        or another one) reads that input again and derives the same rows, so
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


def _process_function(
    batch: dict[Any, Row], row_of: RowFunction[K, V], width: int
) -> Callable[[Record[K, V]], None]:
    """`process` of a processor whose rows have `width` key columns.

    A closure over the batch and the row function (no attribute lookup per
    record), and the batch's key taken from the row by index for one or two key
    columns: cheaper than a generic itemgetter, so that a record costs the row
    function's call, its tuple, and a dict assignment.
    """
    if width == 1:

        def process_one(record: Record[K, V]) -> None:
            row = row_of(record)
            if row is not None:
                batch[row[0]] = row

        return process_one
    if width == 2:

        def process_two(record: Record[K, V]) -> None:
            row = row_of(record)
            if row is not None:
                batch[row[0], row[1]] = row

        return process_two
    key_of = operator.itemgetter(*range(width))

    def process_any(record: Record[K, V]) -> None:
        row = row_of(record)
        if row is not None:
            batch[key_of(row)] = row

    return process_any


def _sample(value: object) -> str:
    """A value quoted, cut to its first characters if a long text (for log lines)."""
    if not isinstance(value, str) or len(value) <= _SAMPLE_CHARS:
        return repr(value)
    return f"{value[:_SAMPLE_CHARS]!r}… ({len(value)} characters)"
