"""TaskId, and SourceRoute: how a message of one input partition enters its task.

A task is named by its sub-topology and partition number (`TaskId`, "0_3" as in
Kafka Streams). Each input partition it reads has one `SourceRoute`, built by
`StreamTask.route`; runtime/processing.py reads its fields for every record,
which is why it is a plain slotted object and not a set of properties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from topicflow.brokers.base import Headers
from topicflow.config import TimestampExtractor
from topicflow.topology.nodes import Forward

if TYPE_CHECKING:
    from topicflow.runtime.task import StreamTask


# A route's screen: (message, headers) -> headers, DUPLICATE or HELD.
Screen = Callable[[Any, Headers | None], Any]

# What a screen returns for a record it queued: it is not processed now.
HELD: Any = object()


@dataclass(frozen=True, order=True, slots=True)
class TaskId:
    subtopology: int
    partition: int

    def __str__(self) -> str:
        return f"{self.subtopology}_{self.partition}"


class SourceRoute:
    """How a message of one input partition enters its task; one per topic-partition.

    `position` is the offset of the next record to process: what the commit
    cycle commits for this partition. The per-record path only keeps the last
    message it processed or skipped (`last`); its offset is read when needed.
    """

    __slots__ = (
        "decode_key",
        "decode_value",
        "extractor",
        "last",
        "origin",
        "partition",
        "process",
        "screen",
        "task",
        "topic",
    )

    def __init__(
        self,
        task: StreamTask,
        topic: str,
        partition: int,
        decode_key: Callable[[bytes], Any] | None,
        decode_value: Callable[[bytes], Any] | None,
        process: Forward,
        extractor: TimestampExtractor | None,
    ) -> None:
        self.task = task
        self.topic = topic
        self.partition = partition
        # Called on non-null bytes only; None: the bytes are the key or value.
        self.decode_key = decode_key
        self.decode_value = decode_value
        self.process = process
        self.extractor = extractor
        self.last: Any = None  # the last message processed or skipped; None: none yet
        # Idempotent state only (else None): this partition's origin id, stamped on
        # the task's outputs.
        self.origin: bytes | None = None
        # What a record meets before it is processed, if anything (None, the usual
        # case, costs the per-record path one test): screen(message, headers)
        # returns the headers to process it with, DUPLICATE (idempotent state: a
        # replay, dropped; OriginFilter.screen) or HELD (queued by the task's
        # PartitionGroup, to be processed in timestamp order; partition_group.py).
        self.screen: Screen | None = None

    @property
    def position(self) -> int:
        """The offset after the last message processed or skipped; -1: none yet."""
        last = self.last
        return -1 if last is None else last.offset() + 1
