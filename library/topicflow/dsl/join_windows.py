"""JoinWindows: how far apart in time two records of a stream-stream join may be.

A record of the left stream at time t joins the right stream's records of the
same key whose timestamps lie in [t - before, t + after]; symmetric windows
(`of_time_difference_*`) have before == after. Grace is how long after a
window's end out-of-order records still join; a left or outer join emits a
record that found no partner only once its window and grace have passed.

    JoinWindows.of_time_difference_and_grace(timedelta(seconds=5), timedelta(seconds=3))
    JoinWindows.of_time_difference_with_no_grace(5000).before(2000)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta

from topicflow.dsl.windows import to_ms
from topicflow.errors import TopologyError


@dataclass(frozen=True, slots=True)
class JoinWindows:
    """Kafka Streams' JoinWindows (with its spurious-result fix: no legacy `of`)."""

    before_ms: int
    after_ms: int
    grace_ms: int

    def __post_init__(self) -> None:
        # As Kafka Streams: before and after may each be negative (a window that
        # does not hold the record's own time), but not the interval they span.
        if self.before_ms + self.after_ms < 0:
            raise TopologyError(
                "the join window's interval (before + after) must not be negative, "
                f"got {self.before_ms} + {self.after_ms} ms"
            )
        if self.grace_ms < 0:
            raise TopologyError(f"grace must not be negative, got {self.grace_ms} ms")

    @staticmethod
    def of_time_difference_and_grace(
        difference: timedelta | int, grace: timedelta | int
    ) -> JoinWindows:
        difference_ms = _not_negative("time difference", to_ms(difference))
        return JoinWindows(difference_ms, difference_ms, to_ms(grace))

    @staticmethod
    def of_time_difference_with_no_grace(difference: timedelta | int) -> JoinWindows:
        difference_ms = _not_negative("time difference", to_ms(difference))
        return JoinWindows(difference_ms, difference_ms, 0)

    def before(self, difference: timedelta | int) -> JoinWindows:
        """How much earlier than a left record a right record may be."""
        return dataclasses.replace(self, before_ms=to_ms(difference))

    def after(self, difference: timedelta | int) -> JoinWindows:
        """How much later than a left record a right record may be."""
        return dataclasses.replace(self, after_ms=to_ms(difference))

    def size_ms(self) -> int:
        return self.before_ms + self.after_ms

    def retention_ms(self) -> int:
        """How long the join stores keep a record: Kafka Streams' size plus grace."""
        return self.before_ms + self.after_ms + self.grace_ms


def _not_negative(what: str, value: int) -> int:
    if value < 0:
        raise TopologyError(f"{what} must not be negative, got {value} ms")
    return value
