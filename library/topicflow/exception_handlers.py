"""Kafka Streams' exception handlers: what to do with a record that cannot be processed.

Three handlers, each set in `StreamsConfig` with Kafka Streams' names in
snake_case, each answering CONTINUE (skip the record, count it, dead-letter
it) or FAIL (stop the stream worker; nothing after the record is committed):

- `deserialization_exception_handler`: the key or value cannot be
  deserialized, or the record has no valid timestamp (default
  `log_and_continue`, topicflow's one deliberate departure from Kafka
  Streams, so that bad bytes never crash-loop a service);
- `processing_exception_handler` (KIP-1033): a DSL function, a processor or a
  punctuator raised, or an external system refused a record a sink wrote
  for its content (see `topicflow.errors.RecordsRefused`); default
  `log_and_fail`, as Kafka Streams;
- `production_exception_handler` (KIP-1065): an output record cannot be
  serialized, is too large, or the broker refused it; default `log_and_fail`,
  as Kafka Streams' `DefaultProductionExceptionHandler`. A send that is not
  acknowledged is not handed to it: the worker retries, input paused, for
  `task_timeout_ms`, then fails.

Each takes `"log_and_continue"`, `"log_and_fail"` or a function
`handler(context, record, error) -> HandlerResponse`. `record` is the record
as the failing step saw it: raw bytes for deserialization, deserialized key
and value for processing, the output record (serialized when the failure is
the send) for production.

With `errors_dead_letter_queue_topic_name` set (KIP-1034), every record a
handler skips goes to that topic with the raw key and value it was read with,
and the headers below (UTF-8 strings).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DLQ_HEADERS",
    "HEADER_ERRORS_EXCEPTION",
    "HEADER_ERRORS_MESSAGE",
    "HEADER_ERRORS_OFFSET",
    "HEADER_ERRORS_PARTITION",
    "HEADER_ERRORS_STACKTRACE",
    "HEADER_ERRORS_TOPIC",
    "HEADER_ERRORS_VALUE_DROPPED",
    "ErrorHandlerContext",
    "ExceptionHandler",
    "HandlerResponse",
    "HandlerSetting",
]


class HandlerResponse(enum.Enum):
    CONTINUE = "CONTINUE"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class ErrorHandlerContext:
    """Where the failure happened (Kafka Streams' `ErrorHandlerContext`).

    `topic`, `partition` and `offset` name the source record being processed;
    they are None, -1 and -1 when there is none (a punctuator, a sink's write
    of an aggregate, a send that failed after the record was processed).
    """

    topic: str | None
    partition: int
    offset: int
    timestamp: int
    task_id: str | None
    # The node that failed: the sink node for production failures, the node
    # whose function or Processor raised for processing failures (found from
    # the traceback), the sink processor for refused records; None for a
    # deserialization failure (no node ran) or a node it cannot tell.
    processor_node_id: str | None
    source_raw_key: bytes | None
    source_raw_value: bytes | None


ExceptionHandler = Callable[[ErrorHandlerContext, Any, Exception], HandlerResponse]
HandlerSetting = Literal["log_and_continue", "log_and_fail"] | ExceptionHandler

# KIP-1034's headers of a dead-lettered record, as Kafka Streams writes them.
HEADER_ERRORS_EXCEPTION = "__streams.errors.exception"
HEADER_ERRORS_MESSAGE = "__streams.errors.message"
HEADER_ERRORS_STACKTRACE = "__streams.errors.stacktrace"
HEADER_ERRORS_TOPIC = "__streams.errors.topic"
HEADER_ERRORS_PARTITION = "__streams.errors.partition"
HEADER_ERRORS_OFFSET = "__streams.errors.offset"
DLQ_HEADERS = (
    HEADER_ERRORS_EXCEPTION,
    HEADER_ERRORS_MESSAGE,
    HEADER_ERRORS_STACKTRACE,
    HEADER_ERRORS_TOPIC,
    HEADER_ERRORS_PARTITION,
    HEADER_ERRORS_OFFSET,
)
# topicflow's own: set when the record's value was left out because the
# dead-letter record would have been larger than the producer may send; it
# holds the value's size in bytes.
HEADER_ERRORS_VALUE_DROPPED = "topicflow.errors.value.dropped"


def is_handler_setting(value: object) -> bool:
    return value in ("log_and_continue", "log_and_fail") or callable(value)
