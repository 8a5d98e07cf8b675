"""Changelog writes: a store's changes sent to its changelog partition.

Keys are laid out as in Kafka Streams' changelogs: a key-value store's key as
is, a window store's key followed by the window start and a sequence number
(WindowKeySchema), a session store's key followed by the session's bounds
(see `topicflow/state/session_store.py`).
"""

from __future__ import annotations

import struct
from typing import Any

from topicflow.brokers.base import Headers
from topicflow.state.session_store import session_changelog_key
from topicflow.topology.nodes import RecordSender

__all__ = ["ChangelogWriter", "split_window_changelog_key", "window_changelog_key"]

# Window changelog keys, as Kafka Streams' WindowKeySchema: key bytes, then the
# window start (8 bytes) and a sequence number (4 bytes), big-endian.
_WINDOW_SUFFIX = struct.Struct(">qi")


def window_changelog_key(key_bytes: bytes, window_start: int) -> bytes:
    return key_bytes + _WINDOW_SUFFIX.pack(window_start, 0)


def split_window_changelog_key(data: bytes) -> tuple[bytes, int]:
    start, _seq = _WINDOW_SUFFIX.unpack_from(data, len(data) - _WINDOW_SUFFIX.size)
    return data[: -_WINDOW_SUFFIX.size], start


class ChangelogWriter:
    """Sends a store's changes to its changelog partition through the task's producer."""

    __slots__ = ("_partition", "_send", "_serialize_key", "_serialize_value", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        sender: RecordSender,
        key_serde: Any,
        value_serde: Any,
    ) -> None:
        self.topic = topic
        self._partition = partition
        self._send = sender.send
        self._serialize_key = key_serde.serialize
        self._serialize_value = value_serde.serialize

    def log(self, key: Any, value: Any, timestamp: int, headers: Headers | None = None) -> None:
        self._send(
            self.topic,
            self._serialize_key(key),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )

    def log_session(
        self,
        key: Any,
        start: int,
        end: int,
        value: Any,
        timestamp: int,
        headers: Headers | None = None,
    ) -> None:
        self._send(
            self.topic,
            session_changelog_key(self._serialize_key(key), start, end),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )

    def log_window(
        self,
        key: Any,
        window_start: int,
        value: Any,
        timestamp: int,
        headers: Headers | None = None,
    ) -> None:
        self._send(
            self.topic,
            window_changelog_key(self._serialize_key(key), window_start),
            None if value is None else self._serialize_value(value),
            timestamp,
            headers,
            self._partition,
        )
