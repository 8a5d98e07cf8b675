"""A partition's log: the records of one partition, in segments, with Kafka's retention.

Stored column-wise (parallel sequences, and an int64 array for timestamps), so a
record costs a few slots and no container object of its own. Above all, no tuple
or message object per stored record means nothing for Python's cyclic GC to
traverse: with a million messages stored as objects, GC passes more than halved
the produce rate. Message objects are made on the way out, by `messages()`, one
per record handed to a consumer, outside the broker's lock.

As in Kafka the log is a list of segments. The newest, active one takes the
appends, in lists; when it is full it is sealed into tuples. Tuples holding only
bytes and None are untracked by the GC after its first look at them, so a full
collection no longer walks every stored record (it did walk the lists: ~7 ns a
slot, paid by every thread of the process), and retention drops whole segments
from the head in O(1).

Offsets never change. Retention advances the log start offset (the low
watermark); compaction keeps only the latest record of each key, at its
original offset, so a compacted segment is sparse and carries its offsets.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import compress, repeat
from operator import is_, not_, or_
from time import time_ns
from typing import Any, NamedTuple

from topicflow.brokers.base import Headers
from topicflow.brokers.embedded.config import LogConfig
from topicflow.brokers.embedded.message import EmbeddedMessage

__all__ = ["Chunk", "PartitionLog", "Segment", "messages"]


class Chunk(NamedTuple):
    """Records of one partition, column-wise, in offset order."""

    offsets: Sequence[int]  # a range when consecutive, else an array of offsets
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    timestamps: array[int]
    headers: list[Headers | None] | None  # None: no record has headers


class Segment:
    """Sealed, immutable records covering offsets up to `end` (exclusive).

    Dense (`offsets` None) when its records have the consecutive offsets
    base, base+1, ...; after compaction, `offsets` lists them.
    """

    __slots__ = (
        "base",
        "end",
        "headers",
        "keys",
        "max_timestamp",
        "offsets",
        "timestamps",
        "values",
    )

    def __init__(
        self,
        base: int,
        end: int,
        offsets: array[int] | None,
        keys: tuple[bytes | None, ...],
        values: tuple[bytes | None, ...],
        timestamps: array[int],
        headers: dict[int, Headers] | None,
        max_timestamp: int,
    ) -> None:
        self.base = base  # offset of the first record
        self.end = end
        self.offsets = offsets
        self.keys = keys
        self.values = values
        self.timestamps = timestamps
        self.headers = headers  # by offset; None: none has headers
        self.max_timestamp = max_timestamp  # for retention.ms (0 when not tracked)

    def read(self, position: int, limit: int) -> Chunk | None:
        """Up to `limit` records from the first at or after `position`."""
        offsets = self.offsets
        count = len(self.values)
        # Dense: by arithmetic; sparse (compacted): by binary search.
        i = max(position - self.base, 0) if offsets is None else bisect_left(offsets, position)
        if i >= count:
            return None
        j = min(i + limit, count)
        if offsets is None:
            chosen: Sequence[int] = range(self.base + i, self.base + j)
        else:
            chosen = offsets[i:j]
        headers = self.headers
        return Chunk(
            chosen,
            self.keys[i:j],
            self.values[i:j],
            self.timestamps[i:j],
            list(map(headers.get, chosen)) if headers else None,
        )


class PartitionLog:
    """Records of one partition; the caller holds the broker's lock.

    `start` is the log start offset (the low watermark), `end` the offset the
    next record gets (the high watermark). Records between them may be missing
    where compaction removed them.
    """

    __slots__ = (
        "base",
        "clean_count",
        "cleaned_end",
        "config",
        "ends",
        "headers",
        "keys",
        "last_slot",
        "sealed",
        "segments",
        "start",
        "timestamps",
        "values",
    )

    def __init__(self, config: LogConfig | None = None) -> None:
        self.config = config = config if config is not None else LogConfig()
        self.start = 0
        # The active segment: dense, records base, base+1, ...
        self.base = 0
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.timestamps = array("q")
        self.headers: dict[int, Headers] = {}  # sparse: most records have none
        # The active segment is sealed when its last slot is filled.
        self.last_slot = config.segment_records - 1
        self.segments: list[Segment] = []
        self.ends: list[int] = []  # segments[i].end, to bisect
        self.sealed = 0  # records in `segments`
        # Compaction: offsets below `cleaned_end` have been compacted, and the
        # last compaction kept `clean_count` records.
        self.cleaned_end = 0
        self.clean_count = 0

    @property
    def end(self) -> int:
        """The high watermark: the offset the next record gets."""
        return self.base + len(self.values)

    @property
    def records(self) -> int:
        """How many records are retained."""
        return self.sealed + len(self.values)

    def append(
        self, key: bytes | None, value: bytes | None, timestamp: int, headers: Headers | None
    ) -> None:
        """Append a record: its offset is then `end - 1` (a roll leaves that true)."""
        values = self.values
        # First: the only append that can fail (OverflowError outside int64).
        self.timestamps.append(timestamp)
        self.keys.append(key)
        values.append(value)
        if headers is not None:
            self.headers[self.base + len(values) - 1] = headers
        if len(values) > self.last_slot:
            self.roll()

    def read(self, position: int, limit: int) -> Chunk | None:
        """Up to `limit` (>= 1) records from the first retained at or after `position`.

        None when there is none. The caller resets positions below `start`
        first (auto.offset.reset); here they read from the first retained record.
        """
        base = self.base
        if position >= base:
            values = self.values
            i = position - base
            count = len(values)
            if i >= count:
                return None
            j = min(i + limit, count)
            offsets = range(position, base + j)
            headers = self.headers
            return Chunk(
                offsets,
                self.keys[i:j],
                values[i:j],
                self.timestamps[i:j],
                list(map(headers.get, offsets)) if headers else None,
            )
        segments = self.segments
        # The segment whose range holds `position`; after a gap, the next ones.
        for k in range(bisect_right(self.ends, position), len(segments)):
            chunk = segments[k].read(position, limit)
            if chunk is not None:
                return chunk
        return self.read(base, limit)

    def chunks(self) -> Iterator[Chunk]:
        """Every retained record, a segment at a time."""
        for segment in self.segments:
            chunk = segment.read(0, len(segment.values))
            if chunk is not None:
                yield chunk
        if self.values:
            chunk = self.read(self.base, len(self.values))
            if chunk is not None:
                yield chunk

    # -- segments, retention and compaction ----------------------------------------------

    def roll(self) -> None:
        """Seal the active segment, then apply the topic's cleanup policy."""
        count = len(self.values)
        if count:
            config = self.config
            base = self.base
            timestamps = self.timestamps
            segment = Segment(
                base,
                base + count,
                None,
                tuple(self.keys),
                tuple(self.values),
                timestamps,
                self.headers or None,
                max(timestamps) if config.retention_ms is not None else 0,
            )
            self.segments.append(segment)
            self.ends.append(segment.end)
            self.sealed += count
            self.base = segment.end
            self.keys, self.values, self.timestamps, self.headers = [], [], array("q"), {}
        self.clean()

    def clean(self) -> None:
        """Compact (when enough is dirty), then drop the head beyond retention."""
        config = self.config
        if config.compact:
            dirty = self.end - max(self.cleaned_end, self.start)
            if dirty >= max(config.min_compaction_records, self.clean_count):
                self.compact()
        if not config.delete:
            return
        segments = self.segments
        limit = config.retention_records
        if limit is not None:
            # As Kafka's retention.bytes: a segment goes only if what remains is
            # still at least the limit, so a partition keeps between `limit` and
            # `limit` + one segment (a tenth of it) records.
            active = len(self.values)
            while segments and self.sealed + active - len(segments[0].values) >= limit:
                self._drop_head()
        if config.retention_ms is not None:
            # As Kafka: a segment goes once its newest record is older than retention.ms.
            horizon = time_ns() // 1_000_000 - config.retention_ms
            while segments and segments[0].max_timestamp < horizon:
                self._drop_head()

    def _drop_head(self) -> None:
        segment = self.segments.pop(0)
        self.ends.pop(0)
        count = len(segment.values)
        self.sealed -= count
        self.start = segment.end
        if segment.base < self.cleaned_end:
            self.clean_count = max(0, self.clean_count - count)

    def compact(self) -> None:
        """Keep the latest record of each key in the sealed segments, at its offset.

        A tombstone (null value) is kept by the compaction that first sees it and
        dropped by the next one, as Kafka drops tombstones once cleaned and
        delete.retention.ms has passed. The active segment is left alone, as
        Kafka leaves its active segment.
        """
        segments = self.segments
        if not segments:
            return
        cleaned_end = self.cleaned_end
        split = 0  # segments[:split] are the clean ones, the last compaction's output
        while split < len(segments) and segments[split].end <= cleaned_end:
            split += 1
        headers: dict[int, Headers] = {}
        for segment in segments:
            if segment.headers:
                headers.update(segment.headers)
        # The dirty records, appended since: dense, consecutive from `first`.
        dirty = segments[split:]
        first = dirty[0].base if dirty else self.base
        keys: list[bytes | None] = []
        values: list[bytes | None] = []
        timestamps = array("q")
        for segment in dirty:
            keys += segment.keys
            values += segment.values
            timestamps += segment.timestamps
        # Later records overwrite earlier ones: the index of the latest of each key.
        latest = dict(zip(keys, range(len(keys)), strict=True))
        keep = sorted(latest.values())
        kept_keys = list(map(keys.__getitem__, keep))
        kept_values = list(map(values.__getitem__, keep))
        kept_offsets = array("q", map(first.__add__, keep))
        kept_timestamps = array("q", map(timestamps.__getitem__, keep))
        if split:
            # A clean record (one per key) stays unless a dirty one of its key
            # replaces it or it is a tombstone (kept once already). All in C: the
            # dictionary is built from the dirty records only.
            keys, values, timestamps = [], [], array("q")
            offsets = array("q")
            for segment in segments[:split]:
                keys += segment.keys
                values += segment.values
                timestamps += segment.timestamps
                if segment.offsets is None:
                    offsets.extend(range(segment.base, segment.base + len(segment.values)))
                else:
                    offsets += segment.offsets
            drop: Iterator[Any] = map(latest.__contains__, keys)
            if None in values:
                drop = map(or_, drop, map(is_, values, repeat(None)))
            selectors = list(map(not_, drop))
            kept_keys = list(compress(keys, selectors)) + kept_keys
            kept_values = list(compress(values, selectors)) + kept_values
            kept_offsets = array("q", compress(offsets, selectors)) + kept_offsets
            kept_timestamps = array("q", compress(timestamps, selectors)) + kept_timestamps
        config = self.config
        size = config.segment_records
        track_time = config.retention_ms is not None
        end = self.base  # the sealed segments cover offsets up to the active one
        compacted: list[Segment] = []
        total = len(kept_values)
        for i in range(0, total, size):
            j = min(total, i + size)
            seg_offsets = kept_offsets[i:j]
            first, last = seg_offsets[0], seg_offsets[-1]
            seg_timestamps = kept_timestamps[i:j]
            seg_headers = None
            if headers:
                seg_headers = {o: headers[o] for o in seg_offsets if o in headers} or None
            compacted.append(
                Segment(
                    first,
                    end if j == total else last + 1,
                    None if last - first + 1 == j - i else seg_offsets,  # dense, or sparse
                    tuple(kept_keys[i:j]),
                    tuple(kept_values[i:j]),
                    seg_timestamps,
                    seg_headers,
                    max(seg_timestamps) if track_time else 0,
                )
            )
        self.segments = compacted
        self.ends = [segment.end for segment in compacted]
        self.sealed = self.clean_count = total
        self.cleaned_end = end

    def clear(self) -> None:
        """Free the records (the topic was deleted)."""
        self.keys.clear()
        self.values.clear()
        del self.timestamps[:]
        self.headers.clear()
        self.segments.clear()
        self.ends.clear()
        self.sealed = 0


def messages(topic: str, partition: int, chunk: Chunk) -> Iterator[EmbeddedMessage]:
    """The messages of a chunk."""
    count = len(chunk.values)
    # map() over the columns builds the messages in C, without a Python-level loop.
    return map(
        EmbeddedMessage,
        repeat(topic, count),
        repeat(partition, count),
        chunk.offsets,
        chunk.keys,
        chunk.values,
        chunk.timestamps,
        chunk.headers if chunk.headers is not None else repeat(None, count),
    )
