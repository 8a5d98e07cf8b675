"""Idempotent state: exact aggregates under at-least-once, without transactions.

At-least-once processes again, after a crash, the records since the last
commit. Without help, an aggregation counts them twice: once in the state its
changelog already holds, once more on the replay. Transactions (exactly_once_v2)
prevent that, but Heroku's plans do not grant them. With `idempotent_state`,
topicflow makes replays harmless with two records of progress:

1. **Origins.** Every record a task sends to a topic carries a header
   `topicflow.origin`: the input partition it derives from (a 64-bit id of
   application, topic and partition) and its position there (input offset,
   then the ordinal of the output among that input record's outputs). A
   replay sends the same outputs with the same origins. A task reading them
   remembers, per origin, the highest position seen, drops anything at or
   below it as a duplicate, and commits that table with its offsets (the
   offset commit's metadata), so it survives the reader's own crash. The
   idempotent producer (enabled with this setting) keeps a partition's records
   in order without gaps, so "at or below the highest position" does mean
   "already seen".
2. **Flush stamps.** Every changelog record carries a header
   `topicflow.flushed`: the task's input position when it was written (its
   value covers every input record before that offset). After a crash the new
   owner restores the store, then replays from the committed offset; the
   changelog records stamped beyond that offset are the ones a replay must not
   apply again. An aggregation skips a replayed record for a key whose stamp
   covers it, and marks the key for a new flush, so its (exact) value is sent
   downstream again: outputs may repeat, they never over-count.

Scope: count, reduce and aggregate over streams, plain or time-windowed, in
sub-topologies that read one topic. Session and sliding window aggregations,
KTable aggregations and records produced from punctuators or cache flushes
stay at-least-once. Under exactly_once_v2 this machinery is off (transactions
already do the job).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import struct
from typing import Any

from topicflow.errors import StreamsException

log = logging.getLogger(__name__)

ORIGIN_HEADER = "topicflow.origin"

# Position of an output: input offset, then the output's ordinal among that
# input record's outputs, in one comparable integer.
SEQUENCE_BITS = 20
MAX_OUTPUTS_PER_RECORD = 1 << SEQUENCE_BITS

ORIGIN = struct.Struct(">8sq")  # origin id, position
_METADATA_PREFIX = "tf1:"
# 180 origins encode to 3,844 characters: under Kafka's default
# offset.metadata.max.bytes (4096).
MAX_ORIGINS = 180

# A dropped duplicate: what `OriginFilter.screen` returns instead of headers.
DUPLICATE: Any = object()


def origin_id(application_id: str, topic: str, partition: int) -> bytes:
    """The 8-byte id of one input partition as read by one application."""
    digest = hashlib.blake2b(
        f"{application_id}\0{topic}\0{partition}".encode(), digest_size=8
    ).digest()
    return digest


def output_position(offset: int, ordinal: int) -> int:
    if ordinal >= MAX_OUTPUTS_PER_RECORD:
        raise StreamsException(
            f"record at offset {offset} produced more than {MAX_OUTPUTS_PER_RECORD} records; "
            "idempotent_state numbers at most that many outputs per input record"
        )
    return (offset << SEQUENCE_BITS) | ordinal


def origin_header(origin: bytes, offset: int, ordinal: int) -> tuple[str, bytes]:
    return ORIGIN_HEADER, ORIGIN.pack(origin, output_position(offset, ordinal))


class OriginFilter:
    """One task's highest position seen per origin; drops replayed duplicates."""

    __slots__ = ("duplicates", "positions")

    def __init__(self, positions: dict[bytes, int] | None = None) -> None:
        self.positions: dict[bytes, int] = positions or {}
        self.duplicates = 0

    def screen(self, _message: Any, headers: list[tuple[str, bytes | None]] | None) -> Any:
        """The record's headers without its origin, or DUPLICATE if it was seen before:
        a route's screen (runtime/source_route.py), one call per record."""
        if not headers:
            return headers
        if len(headers) == 1:  # the usual case: the origin is the only header
            name, value = headers[0]
            if name != ORIGIN_HEADER:
                return headers
            return DUPLICATE if self._seen(value) else None
        for i, (name, value) in enumerate(headers):
            if name == ORIGIN_HEADER:
                if self._seen(value):
                    return DUPLICATE
                # Origins are per hop: the task's own outputs carry its own origin.
                return headers[:i] + headers[i + 1 :] or None
        return headers

    def _seen(self, value: bytes | None) -> bool:
        if value is None or len(value) != ORIGIN.size:
            return False  # not ours: nothing to compare
        origin, position = ORIGIN.unpack(value)
        positions = self.positions
        if position <= positions.get(origin, -1):
            self.duplicates += 1
            return True
        positions[origin] = position
        return False

    # -- persisted as offset-commit metadata ---------------------------------------------

    def encode(self) -> str:
        """The table as offset-commit metadata (brokers cap it: 4096 bytes by default)."""
        items = list(self.positions.items())
        if len(items) > MAX_ORIGINS:
            # Beyond the cap, the oldest origins are forgotten: their replays (if
            # any still come) would count again. Far above a usual topology's
            # number of upstream partitions.
            log.warning(
                "idempotent_state: %d origins exceed the %d an offset commit can carry; "
                "keeping the most recent",
                len(items),
                MAX_ORIGINS,
            )
            items = items[-MAX_ORIGINS:]
            self.positions = dict(items)
        packed = b"".join(ORIGIN.pack(o, p) for o, p in items)
        return _METADATA_PREFIX + base64.b64encode(packed).decode()

    @classmethod
    def decode(cls, metadata: str | None) -> OriginFilter:
        """The filter committed with an offset; empty for metadata of another kind."""
        if not metadata or not metadata.startswith(_METADATA_PREFIX):
            return cls()
        try:
            packed = base64.b64decode(metadata[len(_METADATA_PREFIX) :], validate=True)
        except ValueError:
            return cls()
        size = ORIGIN.size
        positions = {}
        for at in range(0, len(packed) - len(packed) % size, size):
            origin, position = ORIGIN.unpack_from(packed, at)
            positions[origin] = position
        return cls(positions)
