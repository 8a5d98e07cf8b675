"""The session store: aggregates of session windows, keyed by (key, session start, session end).

Kafka Streams' InMemorySessionStore. A session [start, end] (both inclusive)
belongs to one key; the sessions of a key never overlap when written by a
session-windowed aggregation, but the store does not rely on it.

    store.find_sessions(key, earliest_session_end, latest_session_start)
        # sessions of `key` with end >= earliest_session_end and start <= latest_session_start
    store.put(key, start, end, value)     # value None removes the session
    store.fetch(key)                      # every session of `key`

Sessions expire as in Kafka Streams' InMemorySessionStore: the store's own
stream time is the largest session end ever `put` (a put of None included;
`remove` does not count), not the task's; a session is gone once
`end <= that time - retention` (or `end < 0`), and a put of such a session is
ignored. Expiry is applied before every read and put, so an expired session is
never found, even before it is purged.

Changelog records are keyed as Kafka Streams' SessionKeySchema: the serialized
key, then the session end and the session start (8 bytes each, big-endian).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator
from typing import Any

_SESSION_SUFFIX = struct.Struct(">qq")  # end, start


def session_changelog_key(key_bytes: bytes, start: int, end: int) -> bytes:
    return key_bytes + _SESSION_SUFFIX.pack(end, start)


def split_session_changelog_key(data: bytes) -> tuple[bytes, int, int]:
    """(key bytes, session start, session end) of a session changelog key."""
    end, start = _SESSION_SUFFIX.unpack_from(data, len(data) - _SESSION_SUFFIX.size)
    return data[: -_SESSION_SUFFIX.size], start, end


class InMemorySessionStore:
    """Per key, its sessions sorted by (end, start); plus an index by end for expiry.

    `find_sessions` costs a bisection plus the sessions of the key that end at or
    after `earliest_session_end`: for a session-windowed aggregation, the key's
    latest sessions only, however long the retention.
    """

    persistent = False

    def __init__(self, name: str, retention_ms: int) -> None:
        self.name = name
        self.retention_ms = retention_ms
        # key -> sorted [(end, start)], and key -> {(end, start): value}
        self._order: dict[Any, list[tuple[int, int]]] = {}
        self._values: dict[Any, dict[tuple[int, int], Any]] = {}
        # session end -> {(key, start): None} (an ordered set), and the sorted ends.
        self._by_end: dict[int, dict[tuple[Any, int], None]] = {}
        self._ends: list[int] = []
        self._count = 0
        self._observed_time = -1

    # -- reads ---------------------------------------------------------------------------

    @property
    def observed_stream_time(self) -> int:
        """The largest session end put so far (-1 before the first put)."""
        return self._observed_time

    def fetch_session(self, key: Any, start: int, end: int) -> Any:
        self._expire()
        values = self._values.get(key)
        return None if values is None else values.get((end, start))

    def find_sessions(
        self, key: Any, earliest_session_end: int, latest_session_start: int
    ) -> Iterator[tuple[int, int, Any]]:
        """(start, end, value) of the sessions of `key` that end at or after
        `earliest_session_end` and start at or before `latest_session_start`,
        by end then start."""
        self._expire()
        order = self._order.get(key)
        if not order:
            return iter(())
        values = self._values[key]
        lo = bisect.bisect_left(order, (earliest_session_end, -(2**63)))
        return iter(
            [
                (start, end, values[(end, start)])
                for end, start in order[lo:]
                if start <= latest_session_start
            ]
        )

    def fetch(self, key: Any) -> Iterator[tuple[int, int, Any]]:
        """(start, end, value) of every session of `key`, by end then start."""
        self._expire()
        order = self._order.get(key)
        if not order:
            return iter(())
        values = self._values[key]
        return iter([(start, end, values[(end, start)]) for end, start in order])

    def find_sessions_ending_between(
        self, earliest_end: int, latest_end: int
    ) -> Iterator[tuple[Any, int, int, Any]]:
        """(key, start, end, value) of every session of any key that ends in
        [earliest_end, latest_end], by end: Kafka's `findSessions(earliestSessionEndTime,
        latestSessionEndTime)`."""
        self._expire()
        ends = self._ends
        lo = bisect.bisect_left(ends, earliest_end)
        hi = bisect.bisect_right(ends, latest_end)
        found = []
        for end in ends[lo:hi]:
            for key, start in self._by_end[end]:
                found.append((key, start, end, self._values[key][(end, start)]))
        return iter(found)

    def all(self) -> Iterator[tuple[Any, int, int, Any]]:
        """(key, start, end, value) of every session."""
        return self.find_sessions_ending_between(-(2**63), 2**63 - 1)

    def approximate_num_entries(self) -> int:
        return self._count

    # -- writes --------------------------------------------------------------------------

    def put(self, key: Any, start: int, end: int, value: Any) -> None:
        """Store the aggregate of session [start, end] of `key`; None removes it.

        Either way the session's end advances the store's stream time first
        (InMemorySessionStore.put), so a put can expire other keys' sessions.
        """
        if end > self._observed_time:
            self._observed_time = end
            self._expire()
        if end <= self._observed_time - self.retention_ms:
            return  # already expired: dropped, as Kafka Streams does
        if value is None:
            self.remove(key, start, end)
            return
        values = self._values.get(key)
        if values is None:
            values = self._values[key] = {}
            self._order[key] = []
        session = (end, start)
        if session not in values:
            bisect.insort(self._order[key], session)
            by_end = self._by_end.get(end)
            if by_end is None:
                by_end = self._by_end[end] = {}
                bisect.insort(self._ends, end)
            by_end[(key, start)] = None
            self._count += 1
        values[session] = value

    def remove(self, key: Any, start: int, end: int) -> None:
        values = self._values.get(key)
        if values is None or values.pop((end, start), None) is None:
            return
        order = self._order[key]
        del order[bisect.bisect_left(order, (end, start))]
        if not values:
            del self._values[key]
            del self._order[key]
        by_end = self._by_end[end]
        del by_end[(key, start)]
        if not by_end:
            del self._by_end[end]
            del self._ends[bisect.bisect_left(self._ends, end)]
        self._count -= 1

    def observe_stream_time(self, stream_time: int) -> None:
        """Advance the store's stream time to `stream_time` (never back) and expire.

        The session aggregation does not call this: its store's time follows the
        session ends it puts, as Kafka Streams'.
        """
        if stream_time <= self._observed_time:
            return
        self._observed_time = stream_time
        self._expire()

    def _expire(self) -> None:
        """Drop the sessions ending before max(0, stream time - retention + 1): Kafka's
        InMemorySessionStore.removeExpiredSegments (which also drops negative ends)."""
        ends = self._ends
        if not ends:
            return
        horizon = max(0, self._observed_time - self.retention_ms + 1) - 1
        if ends[0] > horizon:
            return  # the common case: nothing expired, one comparison
        expired = bisect.bisect_right(ends, horizon)
        touched: set[Any] = set()
        for end in ends[:expired]:
            for key, start in self._by_end.pop(end):
                values = self._values[key]
                del values[(end, start)]
                self._count -= 1
                if values:
                    touched.add(key)
                else:
                    del self._values[key]
                    del self._order[key]
        del ends[:expired]
        # A key's expired sessions are the first of its (end, start) order.
        for key in touched:
            order = self._order.get(key)
            if order is not None:
                del order[: bisect.bisect_right(order, (horizon, 2**63 - 1))]

    def close(self) -> None:
        self._order.clear()
        self._values.clear()
        self._by_end.clear()
        self._ends.clear()
        self._count = 0
