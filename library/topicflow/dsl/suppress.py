"""`suppress(Suppressed.until_window_closes())`: Kafka Streams' KTableSuppressProcessor.

The buffer takes every update a windowed aggregation forwards and keeps the
latest per windowed key, with that update's timestamp. Its stream time is the
largest timestamp of the updates it received (not of the records the
aggregation took). After each update it emits, and forgets, every window whose
end is at or before stream time minus the wait, in the order of Kafka's
InMemoryTimeOrderedKeyValueChangeBuffer: by window end, then by serialized
windowed key (unsigned bytes). A buffered tombstone (a session merged away) is
dropped, never emitted: final results carry no tombstones.

Kafka logs the buffer to a changelog. Here it lives in memory; an aggregation
refills it from its store at a task's first update (see the callers).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable
from typing import Any

from topicflow.dsl.windows import SessionWindow, TimeWindow, Windowed

_START = struct.Struct(">q")


def time_windowed_key(key_bytes: bytes, start: int) -> bytes:
    """A time window's key as Kafka's TimeWindowedSerializer writes it: key, then start."""
    return key_bytes + _START.pack(start)


class SuppressionBuffer:
    """An unbounded `until_window_closes` buffer; `forward(key, value, timestamp)` emits."""

    def __init__(
        self,
        wait_ms: int,
        window_of: Callable[[int, int], TimeWindow | SessionWindow],
        forward: Callable[[Any, Any, int], None],
    ) -> None:
        self._wait = wait_ms
        self._window_of = window_of
        self._forward = forward
        # windowed key bytes -> (key, start, end, value, timestamp)
        self._entries: dict[bytes, tuple[Any, int, int, Any, int]] = {}
        self._order: list[tuple[int, bytes]] = []  # heap of (end, windowed key bytes)
        self.stream_time = -1

    def buffer(
        self, windowed_key: bytes, key: Any, start: int, end: int, value: Any, timestamp: int
    ) -> None:
        """Hold the latest update of a window (a window keeps its place: its end is fixed)."""
        if windowed_key not in self._entries:
            heapq.heappush(self._order, (end, windowed_key))
        self._entries[windowed_key] = (key, start, end, value, timestamp)

    def update(
        self, windowed_key: bytes, key: Any, start: int, end: int, value: Any, timestamp: int
    ) -> None:
        """An update from the aggregation: buffer it, then emit what closed."""
        self.buffer(windowed_key, key, start, end, value, timestamp)
        self.stream_time = max(self.stream_time, timestamp)
        expiry = self.stream_time - self._wait
        order, entries = self._order, self._entries
        while order and order[0][0] <= expiry:
            key, start, end, value, emitted_at = entries.pop(heapq.heappop(order)[1])
            if value is not None:
                self._forward(Windowed(key, self._window_of(start, end)), value, emitted_at)
