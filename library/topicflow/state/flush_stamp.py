"""Flush stamps: the header on every changelog record of one flush (idempotent state).

A stamp is the input offset before which every record is reflected in the
store's values (`topicflow.flushed`, an 8-byte big-endian integer). After a
crash, the task that restores the store skips the replayed records a key's
restored value already holds (topicflow/runtime/replay.py tells the story).
"""

from __future__ import annotations

import struct

FLUSH_STAMP_HEADER = "topicflow.flushed"
_STAMP = struct.Struct(">q")


def flush_stamp(position: int) -> list[tuple[str, bytes | None]]:
    """The headers of the changelog records of one flush."""
    return [(FLUSH_STAMP_HEADER, _STAMP.pack(position))]


def read_flush_stamp(headers: list[tuple[str, bytes | None]] | None) -> int | None:
    if headers:
        for name, value in headers:
            if name == FLUSH_STAMP_HEADER and value is not None and len(value) == _STAMP.size:
                return int(_STAMP.unpack(value)[0])
    return None
