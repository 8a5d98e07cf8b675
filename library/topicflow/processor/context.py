"""ProcessorContext for user processors: forward, schedule, metadata, stores."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from topicflow.errors import TopologyError
from topicflow.processor.api import Cancellable, PunctuationType, Punctuator, Record, RecordMetadata
from topicflow.topology.nodes import Forward, TaskContext


class ProcessorContextImpl:
    """One per user processor instance (so per node and task)."""

    __slots__ = ("_children", "_fan_out", "_name", "_task")

    def __init__(self, task: TaskContext, name: str, children: dict[str, Forward]) -> None:
        self._task = task
        self._name = name
        self._children = children
        self._fan_out = list(children.values())

    @property
    def application_id(self) -> str:
        return self._task.application_id

    @property
    def task_id(self) -> str:
        return self._task.task_id

    def forward(self, record: Record[Any, Any], child_name: str | None = None) -> None:
        rc = self._task.record_context
        saved_timestamp, saved_headers = rc.timestamp, rc.headers
        rc.timestamp, rc.headers = record.timestamp, record.headers
        try:
            if child_name is None:
                for child in self._fan_out:
                    child(record.key, record.value)
            else:
                try:
                    child = self._children[child_name]
                except KeyError:
                    raise TopologyError(
                        f"{self._name!r} forwarded to unknown child {child_name!r}; "
                        f"its children are {sorted(self._children)}"
                    ) from None
                child(record.key, record.value)
        finally:
            rc.timestamp, rc.headers = saved_timestamp, saved_headers

    def schedule(
        self, interval: timedelta | int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable:
        interval_ms = (
            int(interval.total_seconds() * 1000) if isinstance(interval, timedelta) else interval
        )
        if interval_ms < 1:
            raise TopologyError(f"punctuation interval must be at least 1 ms, got {interval!r}")
        return self._task.schedule(interval_ms, punctuation_type, callback)

    def record_metadata(self) -> RecordMetadata | None:
        rc = self._task.record_context
        return None if rc.message is None else rc

    def current_stream_time_ms(self) -> int:
        return self._task.stream_time

    def current_system_time_ms(self) -> int:
        return self._task.wall_clock_ms()

    def commit(self) -> None:
        self._task.request_commit()

    def get_state_store(self, name: str) -> Any:
        return self._task.get_state_store(name)


def system_time_ms() -> int:
    return time.time_ns() // 1_000_000
