"""What a database implements for a `BatchingSink`: the backend interface.

The batching sink owns the batch, the per-thread connections, the retries and
the isolation of refused rows; a backend only knows its database: how to
connect, create the table, write a batch in one transaction, and what an
error means (refused for a row's content, retriable, or fatal), in messages
without secrets. `topicflow.sinks.postgres` and `topicflow.sinks.sqlite`
implement it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from topicflow.errors import TopicflowError
from topicflow.sinks.table import Row

__all__ = ["SinkBackend", "not_retried", "rows_kept"]

C = TypeVar("C")


def rows_kept(rows: int) -> str:
    """The end of a RetriableError's message."""
    return f"{rows} row{'s' if rows != 1 else ''} kept for retry"


def not_retried(rows: int) -> str:
    """The end of a StreamsException's message."""
    return (
        "not retried (the worker stops); the input offsets were not committed, so "
        f"the {rows} buffered row{'s' if rows != 1 else ''} will be written after a restart"
    )


class SinkBackend(ABC, Generic[C]):
    """What a database implements for a `BatchingSink`: connections of type `C`."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The database in messages, without secrets: `PostgreSQL at user@host:port/db`."""

    @abstractmethod
    def open(self) -> C:
        """A new connection (not in autocommit mode)."""

    @abstractmethod
    def create_table(self, connection: C) -> None:
        """Create the table and its unique index if missing, and commit."""

    @abstractmethod
    def write(self, connection: C, rows: list[Row]) -> None:
        """Upsert `rows` (unique keys) in one transaction, and commit."""

    @abstractmethod
    def close(self, connection: C) -> None:
        """Close the connection; never raises."""

    @abstractmethod
    def failure(self, error: Exception, during: str, rows: int) -> TopicflowError | None:
        """The RetriableError or StreamsException to raise for `error` (raised while
        `during`: "connecting", "creating the table" or "writing"; `rows` buffered),
        or None to let `error` through."""

    def refused_for_content(self, error: Exception) -> bool:
        """Whether `error`, raised while writing rows, means that the database refused
        a row for its content: writing that row again can never succeed, the other
        rows can be written. Classify by cause, not by the driver's exception class.
        By default no error is: any failure is the whole batch's."""
        return False

    def rollback(self, connection: C) -> None:
        """Roll back the failed transaction, keeping the connection (raises if it broke)."""
        connection.rollback()  # type: ignore[attr-defined]

    def scrub(self, text: str) -> str:
        """`text` without secrets (a backend with a password masks it)."""
        return text
