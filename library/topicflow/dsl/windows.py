"""Windows: how records are grouped in time, and the keys of windowed results.

Window boundaries are aligned to the epoch, as in Kafka: a tumbling window of
10 s holds [0, 10000), [10000, 20000)... whatever time the application starts.
A window is [start, end): start inclusive, end exclusive (sessions: both
inclusive, as in Kafka Streams).

    TimeWindows.of_size_with_no_grace(timedelta(seconds=10))        # tumbling
    TimeWindows.of_size_and_grace(timedelta(seconds=10), timedelta(seconds=2))
    TimeWindows.of_size_with_no_grace(...).advance_by(timedelta(seconds=5))  # hopping
    SlidingWindows.of_time_difference_with_no_grace(timedelta(seconds=10))
    SessionWindows.of_inactivity_gap_with_no_grace(timedelta(minutes=5))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from topicflow.errors import TopologyError

K = TypeVar("K")

# Kafka Streams' default retention of a window store is one day, or the
# window's size plus grace if larger.
DEFAULT_RETENTION_MS = 24 * 3600 * 1000


def to_ms(duration: timedelta | int) -> int:
    """A timedelta, or a number of milliseconds, in milliseconds."""
    if isinstance(duration, timedelta):
        return int(duration.total_seconds() * 1000)
    return int(duration)


@dataclass(frozen=True, slots=True, order=True)
class TimeWindow:
    """A window [start, end) in epoch milliseconds."""

    start: int
    end: int

    def overlaps(self, other: TimeWindow) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True, slots=True, order=True)
class SessionWindow:
    """A session [start, end], both inclusive: the first and last record's times."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Windowed(Generic[K]):
    """The key of a windowed result: the record key and its window."""

    key: K
    window: TimeWindow | SessionWindow

    def __str__(self) -> str:
        return f"[{self.key}@{self.window.start}/{self.window.end}]"


@dataclass(frozen=True, slots=True)
class TimeWindows:
    """Fixed-size windows, tumbling (advance == size) or hopping (advance < size)."""

    size_ms: int
    advance_ms: int
    grace_ms: int

    @staticmethod
    def of_size_with_no_grace(size: timedelta | int) -> TimeWindows:
        size_ms = _positive("window size", to_ms(size))
        return TimeWindows(size_ms, size_ms, 0)

    @staticmethod
    def of_size_and_grace(size: timedelta | int, grace: timedelta | int) -> TimeWindows:
        size_ms = _positive("window size", to_ms(size))
        return TimeWindows(size_ms, size_ms, _not_negative("grace", to_ms(grace)))

    def advance_by(self, advance: timedelta | int) -> TimeWindows:
        advance_ms = _positive("advance", to_ms(advance))
        if advance_ms > self.size_ms:
            raise TopologyError(
                f"advance ({advance_ms} ms) must not exceed the window size ({self.size_ms} ms)"
            )
        return TimeWindows(self.size_ms, advance_ms, self.grace_ms)

    def windows_for(self, timestamp: int) -> list[int]:
        """Start times of every window that holds `timestamp`, oldest first."""
        size, advance = self.size_ms, self.advance_ms
        last_start = timestamp - timestamp % advance
        # Kafka's TimeWindows.windowsFor: the first start is a multiple of the advance.
        first_start = max(0, timestamp - size + advance)
        first_start -= first_start % advance
        # A window [s, s + size) holds t when s <= t < s + size.
        return [s for s in range(first_start, last_start + 1, advance) if s + size > timestamp]

    def retention_ms(self) -> int:
        return max(DEFAULT_RETENTION_MS, self.size_ms + self.grace_ms)


@dataclass(frozen=True, slots=True)
class SlidingWindows:
    """Windows of `time_difference_ms` defined by the records themselves (Kafka's KIP-450):
    two records are in a common window when their timestamps differ by at most the difference."""

    time_difference_ms: int
    grace_ms: int

    @staticmethod
    def of_time_difference_with_no_grace(difference: timedelta | int) -> SlidingWindows:
        return SlidingWindows(_positive("time difference", to_ms(difference)), 0)

    @staticmethod
    def of_time_difference_and_grace(
        difference: timedelta | int, grace: timedelta | int
    ) -> SlidingWindows:
        return SlidingWindows(
            _positive("time difference", to_ms(difference)),
            _not_negative("grace", to_ms(grace)),
        )

    def retention_ms(self) -> int:
        return max(DEFAULT_RETENTION_MS, 2 * self.time_difference_ms + self.grace_ms)


@dataclass(frozen=True, slots=True)
class SessionWindows:
    """Sessions: records of a key closer than the inactivity gap merge into one window."""

    gap_ms: int
    grace_ms: int

    @staticmethod
    def of_inactivity_gap_with_no_grace(gap: timedelta | int) -> SessionWindows:
        return SessionWindows(_positive("inactivity gap", to_ms(gap)), 0)

    @staticmethod
    def of_inactivity_gap_and_grace(gap: timedelta | int, grace: timedelta | int) -> SessionWindows:
        return SessionWindows(
            _positive("inactivity gap", to_ms(gap)), _not_negative("grace", to_ms(grace))
        )

    def retention_ms(self) -> int:
        return max(DEFAULT_RETENTION_MS, self.gap_ms + self.grace_ms)


def _positive(what: str, value: int) -> int:
    if value <= 0:
        raise TopologyError(f"{what} must be positive, got {value} ms")
    return value


def _not_negative(what: str, value: int) -> int:
    if value < 0:
        raise TopologyError(f"{what} must not be negative, got {value} ms")
    return value
