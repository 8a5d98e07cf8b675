"""ErrorHandling: a stream worker's exception handlers, dead-letter queue and skip counters.

Every failure a handler may skip comes here, from one of four places:

    deserialization  runtime/processing.py  bad key or value bytes, no valid timestamp
    processing       runtime/processing.py  a DSL function, processor or punctuator raised
                     runtime/punctuation.py
    production       runtime/sink_nodes.py  an output cannot be serialized or is too large
                     record_collector.py    the broker refused an output for its content
    sink             runtime/task.py        an external system refused a record a sink
                                            wrote (RecordsRefused; the processing handler)

Per failure: count it by cause, ask the configured handler, then either raise
HandlerFailed (FAIL: the worker stops, nothing after the record is committed)
or log a sample (rate-limited), send the record to the dead-letter queue, and
return (CONTINUE). The dead-letter record goes through the worker's own
producer, so the commit that covers the skipped record waits for it to be
acknowledged, and under exactly-once it is part of the same transaction.

Nothing here is on the per-record path: it runs only when something failed.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from topicflow.brokers.base import Headers
from topicflow.config import StreamsConfig
from topicflow.errors import HandlerFailed, RefusedRecord
from topicflow.exception_handlers import (
    HEADER_ERRORS_EXCEPTION,
    HEADER_ERRORS_MESSAGE,
    HEADER_ERRORS_OFFSET,
    HEADER_ERRORS_PARTITION,
    HEADER_ERRORS_STACKTRACE,
    HEADER_ERRORS_TOPIC,
    HEADER_ERRORS_VALUE_DROPPED,
    ErrorHandlerContext,
    HandlerResponse,
    HandlerSetting,
)
from topicflow.processor.api import Record
from topicflow.topology.nodes import RecordSender

log = logging.getLogger(__name__)

# One log line per cause this often at most: a stream of bad records must not
# become a stream of log lines. Each line carries a sample and the count.
LOG_EVERY_S = 5.0
# Header texts are capped: an error message may quote a whole (large) record.
MAX_HEADER_CHARS = 16_384
SAMPLE_CHARS = 300

# Producer errors that concern one record: the production handler decides.
# Any other failed delivery (authorization, an unknown topic, a timeout after
# task_timeout_ms) concerns every record, and stops the worker.
RECORD_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.INVALID_MSG,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.POLICY_VIOLATION,
    }
)

_SETTING = {
    "deserialization": "deserialization_exception_handler",
    "processing": "processing_exception_handler",
    "production": "production_exception_handler",
    "sink": "processing_exception_handler",
}
_COUNTER = {
    "deserialization": "deserialization_errors",
    "timestamp": "invalid_timestamps",
    "processing": "processing_errors",
    "production": "production_errors",
    "sink": "sink_errors",
}


def _builtin(response: HandlerResponse) -> Any:
    def handler(_context: ErrorHandlerContext, _record: Any, _error: Exception) -> HandlerResponse:
        return response

    return handler


def _handler(setting: HandlerSetting) -> Any:
    if setting == "log_and_continue":
        return _builtin(HandlerResponse.CONTINUE)
    if setting == "log_and_fail":
        return _builtin(HandlerResponse.FAIL)
    return setting


def exception_text(error: BaseException) -> str:
    """The exception as Java's `Throwable.toString()` gives it: qualified class, then message."""
    cls = type(error)
    name = (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
    message = str(error)
    return f"{name}: {message}" if message else name


def dead_letter_headers(context: ErrorHandlerContext, error: BaseException) -> Headers:
    """KIP-1034's headers, as Kafka Streams writes them (UTF-8 strings)."""
    stack = "".join(traceback.format_exception(error))
    return [
        (HEADER_ERRORS_EXCEPTION, _capped(exception_text(error))),
        (HEADER_ERRORS_MESSAGE, _capped(str(error))),
        (HEADER_ERRORS_STACKTRACE, _capped(stack)),
        (HEADER_ERRORS_TOPIC, _capped(context.topic or "")),
        (HEADER_ERRORS_PARTITION, str(context.partition).encode()),
        (HEADER_ERRORS_OFFSET, str(context.offset).encode()),
    ]


def _capped(text: str) -> bytes:
    if len(text) > MAX_HEADER_CHARS:
        text = text[:MAX_HEADER_CHARS] + f"... ({len(text) - MAX_HEADER_CHARS} more characters)"
    return text.encode("utf-8", "backslashreplace")


def _sample(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS] + "..."


class ErrorHandling:
    """The handlers of one stream worker (or test driver); see the module docstring."""

    def __init__(self, config: StreamsConfig, metrics: Any) -> None:
        self._metrics = metrics
        self._settings = {
            "deserialization_exception_handler": config.deserialization_exception_handler,
            "processing_exception_handler": config.processing_exception_handler,
            "production_exception_handler": config.production_exception_handler,
        }
        self._handlers = {name: _handler(value) for name, value in self._settings.items()}
        self.dead_letter_topic = config.errors_dead_letter_queue_topic_name
        # Set once the worker has its producer; dead letters wait for it.
        self.sender: RecordSender | None = None
        self._last_log: dict[str, float] = {}

    # -- the four places ----------------------------------------------------------

    def deserialization_failed(
        self, task_id: str, message: Any, error: Exception | None, kind: str
    ) -> None:
        """A consumed record cannot be read: `kind` is "deserialization" or "timestamp"."""
        if error is None:
            error = ValueError(f"invalid timestamp {message.timestamp()[1]}")
        context = self._context(task_id, None, message, message.timestamp()[1])
        record = Record(message.key(), message.value(), message.timestamp()[1])
        what = "cannot deserialize" if kind == "deserialization" else "invalid timestamp"
        self._handle(kind, "deserialization", context, record, error, what)

    def processing_failed(
        self,
        task_id: str,
        message: Any,
        key: Any,
        value: Any,
        timestamp: int,
        error: Exception,
        node: str | None = None,
    ) -> None:
        """Processing raised; `message` is the input record (None in a punctuator)."""
        context = self._context(task_id, node, message, timestamp)
        what = "processing failed" if message is not None else "punctuation failed"
        self._handle(
            "processing", "processing", context, Record(key, value, timestamp), error, what
        )

    def production_failed(
        self,
        task_id: str,
        node: str,
        message: Any,
        topic: str,
        key: Any,
        value: Any,
        timestamp: int,
        error: Exception,
    ) -> None:
        """Serializing or handing an output record to the producer failed."""
        context = self._context(task_id, node, message, timestamp)
        record = Record(key, value, timestamp, topic=topic)
        self._handle(
            "production", "production", context, record, error, f"producing to {topic} failed"
        )

    def delivery_failed(self, message: Any, error: Any) -> bool:
        """The broker refused an output after it was sent (a delivery report).

        True: handled (skipped). False: not a failure of this record alone, or the
        handler answered FAIL; the caller keeps it and the worker fails at commit.
        """
        if error.code() not in RECORD_ERRORS:
            return False
        exception = KafkaException(error)
        context = ErrorHandlerContext(
            None, -1, -1, message.timestamp()[1], None, None, message.key(), message.value()
        )
        record = Record(
            message.key(), message.value(), message.timestamp()[1], topic=message.topic()
        )
        try:
            self._handle(
                "production",
                "production",
                context,
                record,
                exception,
                f"the broker refused a record for {message.topic()}",
            )
        except HandlerFailed:
            return False
        return True

    def records_refused(
        self, task_id: str, node: str, refused: RefusedRecord, timestamp: int
    ) -> None:
        """A sink's external system refused a record for its content; `timestamp` is the
        commit's, for a record that carries none."""
        if refused.timestamp is not None:
            timestamp = refused.timestamp
        context = ErrorHandlerContext(
            None, -1, -1, timestamp, task_id, node, refused.key, refused.value
        )
        record = Record(refused.key, refused.value, timestamp)
        key = refused.key if refused.key is None else refused.key[:80]
        what = f"{node} could not write the record keyed {key!r}"
        self._handle("sink", "sink", context, record, refused.error, what)

    # -- the common path ------------------------------------------------------------

    def _handle(
        self,
        counter: str,
        cause: str,
        context: ErrorHandlerContext,
        record: Any,
        error: Exception,
        what: str,
    ) -> None:
        metrics = self._metrics
        name = _COUNTER[counter]
        setattr(metrics, name, getattr(metrics, name) + 1)
        setting = _SETTING[cause]
        where = _where(context)
        try:
            response = self._handlers[setting](context, record, error)
        except Exception as handler_error:
            raise HandlerFailed(
                f"{where}: {what}, and {setting} raised {type(handler_error).__name__}: "
                f"{handler_error}; nothing after the record is committed"
            ) from error
        if response is not HandlerResponse.CONTINUE:
            if response is not HandlerResponse.FAIL:
                reason = f"{setting} returned {response!r}, not a HandlerResponse"
            elif isinstance(self._settings[setting], str):
                reason = f"{setting} is log_and_fail (set log_and_continue to skip such records)"
            else:
                reason = f"{setting} answered FAIL"
            raise HandlerFailed(
                f"{where}: {what}: {type(error).__name__}: {_sample(error)}; {reason}; "
                "nothing after the record is committed"
            ) from error
        sent = self._dead_letter(context, error)
        now = time.monotonic()
        if now - self._last_log.get(cause, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._last_log[cause] = now
            log.warning(
                "skipping %s: %s: %s: %s%s (%d %s so far)",
                where,
                what,
                type(error).__name__,
                _sample(error),
                f"; sent to {self.dead_letter_topic}" if sent else "",
                getattr(metrics, name),
                name.replace("_", " "),
            )

    def _dead_letter(self, context: ErrorHandlerContext, error: Exception) -> bool:
        topic, sender = self.dead_letter_topic, self.sender
        if topic is None or sender is None:
            return False
        headers = dead_letter_headers(context, error)
        key, value = context.source_raw_key, context.source_raw_value
        try:
            sender.send(topic, key, value, context.timestamp, headers, -1)
        except KafkaException as send_error:
            if send_error.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE or value is None:
                raise
            # The record itself was the problem (e.g. a 1 MB value whose output was
            # too large): dead-letter it without its value rather than not at all.
            headers.append((HEADER_ERRORS_VALUE_DROPPED, str(len(value)).encode()))
            sender.send(topic, key, None, context.timestamp, headers, -1)
        self._metrics.dead_lettered += 1
        return True

    @staticmethod
    def _context(
        task_id: str, node: str | None, message: Any, timestamp: int
    ) -> ErrorHandlerContext:
        if message is None:
            return ErrorHandlerContext(None, -1, -1, timestamp, task_id, node, None, None)
        return ErrorHandlerContext(
            message.topic(),
            message.partition(),
            message.offset(),
            timestamp,
            task_id,
            node,
            message.key(),
            message.value(),
        )


def _where(context: ErrorHandlerContext) -> str:
    task = f" in task {context.task_id}" if context.task_id else ""
    if context.topic is None:
        return (
            f"a record{task}"
            if not context.processor_node_id
            else (f"a record of {context.processor_node_id}{task}")
        )
    return f"record {context.topic}[{context.partition}]@{context.offset}{task}"
