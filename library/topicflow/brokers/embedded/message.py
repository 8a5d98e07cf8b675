"""The embedded broker's message: a record as confluent-kafka's `Message` shows it.

Made when a record is handed to a consumer or to a delivery callback (the log
stores records column-wise, not as messages). It has confluent's accessors but
no setters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError

from topicflow.brokers.base import OFFSET_INVALID, TIMESTAMP_CREATE_TIME, Headers

__all__ = ["EmbeddedMessage", "FailedMessage", "as_bytes", "normalize_headers"]


class EmbeddedMessage:
    """One record of a partition, with confluent-kafka's `Message` accessors."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._key = key
        self._value = value
        self._timestamp = timestamp
        self._headers = headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (TIMESTAMP_CREATE_TIME, self._timestamp)

    def headers(self) -> Headers | None:
        return self._headers

    def error(self) -> KafkaError | None:
        return None

    def latency(self) -> float | None:
        return None

    def leader_epoch(self) -> int | None:
        return None

    def __len__(self) -> int:
        value = self._value
        return 0 if value is None else len(value)

    def __repr__(self) -> str:
        return (
            f"EmbeddedMessage(topic={self._topic!r}, partition={self._partition}, "
            f"offset={self._offset}, key={self._key!r})"
        )


class FailedMessage(EmbeddedMessage):
    """A record that could not be appended, as passed to its delivery callback."""

    __slots__ = ("_error",)

    def __init__(
        self,
        error: KafkaError,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        super().__init__(topic, partition, OFFSET_INVALID, key, value, timestamp, headers)
        self._error = error

    def error(self) -> KafkaError:
        return self._error


def as_bytes(data: object, what: str) -> bytes:
    """A key, value or header value as confluent-kafka accepts it: bytes-like or str."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what}: a bytes-like object is required, not {type(data).__name__!r}")


def normalize_headers(headers: Any) -> Headers | None:
    """Headers as a consumer sees them: a list of (str, bytes|None), or None when empty."""
    items: Sequence[tuple[str, Any]] = (
        list(headers.items()) if isinstance(headers, Mapping) else headers
    )
    out: Headers = []
    for name, value in items:
        if not isinstance(name, str):
            raise TypeError(f"header name must be str, not {type(name).__name__!r}")
        out.append((name, None if value is None else as_bytes(value, f"header {name!r}")))
    return out or None
