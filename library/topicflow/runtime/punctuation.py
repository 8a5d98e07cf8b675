"""A task's punctuation schedules, and firing the ones that are due.

As Kafka Streams' PunctuationQueue and PunctuationSchedule: a processor
schedules a punctuator through its context (`StreamTask.schedule`), and the
stream worker asks each task, once per turn of its loop and per punctuation
type, to fire the due ones (`StreamTask.punctuate`, bound to
`PunctuationQueue.punctuate`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from topicflow.errors import HandlerFailed, StreamsException, TopologyError
from topicflow.processor.api import Cancellable, PunctuationType, Punctuator
from topicflow.topology.nodes import RecordContext

if TYPE_CHECKING:
    from topicflow.runtime.task import StreamTask


class PunctuationSchedule:
    """One scheduled punctuator; the `Cancellable` its processor gets back."""

    __slots__ = ("callback", "cancelled", "interval", "next_time", "type")

    def __init__(
        self, interval: int, ptype: PunctuationType, callback: Punctuator, next_time: int
    ) -> None:
        self.interval = interval
        self.type = ptype
        self.callback = callback
        self.next_time = next_time
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class PunctuationQueue:
    """The punctuation schedules of one task."""

    __slots__ = ("_clock", "_record_context", "_schedules", "_task")

    def __init__(
        self, task: StreamTask, record_context: RecordContext, clock: Callable[[], int]
    ) -> None:
        # The task only for a punctuator's failure: its id, handlers and nodes.
        self._task = task
        self._record_context = record_context
        self._clock = clock
        self._schedules: list[PunctuationSchedule] = []

    def schedule(
        self, interval_ms: int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable:
        if punctuation_type is PunctuationType.WALL_CLOCK_TIME:
            first = self._clock() + interval_ms
        else:
            # As Kafka Streams: a stream-time schedule starts at 0, so it fires at
            # the first record, then at multiples of the interval.
            first = 0
        schedule = PunctuationSchedule(interval_ms, punctuation_type, callback, first)
        self._schedules.append(schedule)
        return schedule

    def punctuate(self, ptype: PunctuationType, now: int) -> int:
        """Fire due punctuators of one type; returns how many fired."""
        fired = 0
        if not self._schedules:
            return 0
        rc = self._record_context
        for schedule in list(self._schedules):
            if schedule.cancelled:
                self._schedules.remove(schedule)
                continue
            if schedule.type is not ptype:
                continue
            if now < schedule.next_time:
                continue
            rc.message, rc.timestamp, rc.headers, rc.origin = None, now, None, None
            try:
                schedule.callback(now)
            except (HandlerFailed, StreamsException, TopologyError):
                raise
            except Exception as error:
                # KIP-1033: a punctuator's failure goes to the processing handler too.
                task = self._task
                task.errors.processing_failed(
                    str(task.id), None, None, None, now, error, task.node_of(error)
                )
            fired += 1
            # As Kafka Streams' PunctuationSchedule.next: one firing however many
            # intervals were missed, then the next on the schedule's own grid
            # (first time + a multiple of the interval), not `now + interval`.
            interval = schedule.interval
            missed = (now - schedule.next_time) // interval
            schedule.next_time += (missed + 1) * interval
        return fired
