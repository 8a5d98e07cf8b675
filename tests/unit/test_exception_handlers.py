"""Kafka Streams' three exception handlers and the dead-letter queue (KIP-1033, -1034, -1065).

Each handler is driven through the test driver with records that fail at its
step; the dead-letter records are read back from the driver's output and
their headers pinned byte for byte (Kafka Streams' names and string forms).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from topicflow import Consumed, Processor, Record, Serdes, StreamsBuilder, StreamsConfig
from topicflow.errors import ConfigError, HandlerFailed, RecordsRefused, RefusedRecord
from topicflow.exception_handlers import (
    DLQ_HEADERS,
    HEADER_ERRORS_VALUE_DROPPED,
    ErrorHandlerContext,
    HandlerResponse,
)
from topicflow.processor.api import ProcessorContext, PunctuationType
from topicflow.runtime.error_handling import ErrorHandling, exception_text
from topicflow.runtime.processing import WorkerMetrics, dropped_records_summary
from topicflow.serdes import Serde
from topicflow.testing import TestRecord, TopologyTestDriver

DLQ = "app-dlq"
BYTES = Serdes.Bytes()


def config(**overrides: Any) -> StreamsConfig:
    settings: dict[str, Any] = {
        "application_id": "handlers-test",
        "default_key_serde": Serdes.String(),
        "default_value_serde": Serdes.String(),
        "errors_dead_letter_queue_topic_name": DLQ,
    }
    settings.update(overrides)
    return StreamsConfig(**settings)


def dead_letters(driver: TopologyTestDriver) -> list[TestRecord]:
    return driver.create_output_topic(DLQ, BYTES, BYTES).read_records_to_list()


def headers_of(record: TestRecord) -> dict[str, bytes | None]:
    return dict(record.headers or [])


def failing_on_value(bad: str) -> Any:
    """textlines -> upper-cased, raising ValueError on `bad`."""

    def upper(value: str) -> str:
        if value == bad:
            raise ValueError(f"cannot take {value!r}")
        return value.upper()

    builder = StreamsBuilder()
    builder.stream("in").map_values(upper).to("out")
    return builder.build()


# -- processing (KIP-1033) -------------------------------------------------------------


def test_processing_error_is_skipped_counted_and_dead_lettered_with_kafkas_headers() -> None:
    with TopologyTestDriver(
        failing_on_value("boom"), config(processing_exception_handler="log_and_continue")
    ) as driver:
        for i, value in enumerate(["a", "boom", "b"]):
            driver.pipe_raw("in", f"k{i}".encode(), value.encode(), 1000 + i)
        out = driver.create_output_topic("out").read_key_values_to_list()
        assert [tuple(kv) for kv in out] == [("k0", "A"), ("k2", "B")]
        assert driver.metrics.processing_errors == 1
        assert driver.metrics.dead_lettered == 1
        (letter,) = dead_letters(driver)
    # The raw key and value as read, the record's timestamp, Kafka's six headers.
    assert (letter.key, letter.value, letter.timestamp) == (b"k1", b"boom", 1001)
    headers = headers_of(letter)
    assert list(headers) == list(DLQ_HEADERS)
    assert headers["__streams.errors.exception"] == b"ValueError: cannot take 'boom'"
    assert headers["__streams.errors.message"] == b"cannot take 'boom'"
    assert headers["__streams.errors.topic"] == b"in"
    assert headers["__streams.errors.partition"] == b"0"
    assert headers["__streams.errors.offset"] == b"1"
    stack = (headers["__streams.errors.stacktrace"] or b"").decode()
    assert stack.startswith("Traceback (most recent call last):")
    assert "in upper" in stack and stack.rstrip().endswith("ValueError: cannot take 'boom'")


def test_processing_error_fails_by_default_naming_the_record() -> None:
    with TopologyTestDriver(failing_on_value("boom"), config()) as driver:
        driver.pipe_raw("in", b"k0", b"a", 0)
        with pytest.raises(HandlerFailed) as failed:
            driver.pipe_raw("in", b"k1", b"boom", 0)
        assert dead_letters(driver) == []  # FAIL: nothing dead-lettered, nothing skipped
    message = str(failed.value)
    assert "record in[0]@1 in task 0_0" in message
    assert "processing_exception_handler is log_and_fail" in message
    assert "\n" not in message


def test_without_a_dead_letter_queue_a_skip_is_only_counted() -> None:
    overrides = {
        "processing_exception_handler": "log_and_continue",
        "errors_dead_letter_queue_topic_name": None,
    }
    with TopologyTestDriver(failing_on_value("boom"), config(**overrides)) as driver:
        driver.pipe_raw("in", b"k1", b"boom", 0)
        assert driver.metrics.processing_errors == 1
        assert driver.metrics.dead_lettered == 0
        assert dead_letters(driver) == []


def test_a_handler_function_sees_the_context_and_the_record() -> None:
    seen: list[tuple[ErrorHandlerContext, Any, Exception]] = []

    def handler(context: ErrorHandlerContext, record: Any, error: Exception) -> HandlerResponse:
        seen.append((context, record, error))
        return HandlerResponse.CONTINUE if record.value == "boom" else HandlerResponse.FAIL

    with TopologyTestDriver(
        failing_on_value("boom"), config(processing_exception_handler=handler)
    ) as driver:
        driver.pipe_raw("in", b"k1", b"boom", 77)
        (context, record, error) = seen[0]
        assert (context.topic, context.partition, context.offset, context.timestamp) == (
            "in",
            0,
            0,
            77,
        )
        assert (context.task_id, context.source_raw_key, context.source_raw_value) == (
            "0_0",
            b"k1",
            b"boom",
        )
        # The record as processing saw it: deserialized.
        assert (record.key, record.value, record.timestamp) == ("k1", "boom", 77)
        assert isinstance(error, ValueError)
        assert len(dead_letters(driver)) == 1


def test_a_handler_function_answering_fail_stops_with_its_name() -> None:
    def handler(_context: ErrorHandlerContext, _record: Any, _error: Exception) -> HandlerResponse:
        return HandlerResponse.FAIL

    with (
        TopologyTestDriver(
            failing_on_value("boom"), config(processing_exception_handler=handler)
        ) as driver,
        pytest.raises(HandlerFailed, match="processing_exception_handler answered FAIL"),
    ):
        driver.pipe_raw("in", b"k1", b"boom", 0)


def test_a_handler_that_raises_or_answers_nonsense_fails() -> None:
    def raising(_context: ErrorHandlerContext, _record: Any, _error: Exception) -> Any:
        raise RuntimeError("handler bug")

    def nonsense(_context: ErrorHandlerContext, _record: Any, _error: Exception) -> Any:
        return "CONTINUE"

    with (
        TopologyTestDriver(
            failing_on_value("boom"), config(processing_exception_handler=raising)
        ) as driver,
        pytest.raises(HandlerFailed, match="raised RuntimeError: handler bug"),
    ):
        driver.pipe_raw("in", b"k1", b"boom", 0)
    with (
        TopologyTestDriver(
            failing_on_value("boom"), config(processing_exception_handler=nonsense)
        ) as driver,
        pytest.raises(HandlerFailed, match="returned 'CONTINUE', not a HandlerResponse"),
    ):
        driver.pipe_raw("in", b"k1", b"boom", 0)


class _Ticking(Processor[str, str, str, str]):
    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context
        context.schedule(10, PunctuationType.STREAM_TIME, self.tick)

    def tick(self, timestamp: int) -> None:
        if timestamp >= 20:
            raise RuntimeError(f"tick at {timestamp}")
        self.context.forward(Record("tick", str(timestamp), timestamp))

    def process(self, record: Record[str, str]) -> None:
        self.context.forward(record)


def test_a_punctuator_failure_goes_to_the_processing_handler_without_a_source() -> None:
    builder = StreamsBuilder()
    builder.stream("in").process(_Ticking).to("out")
    with TopologyTestDriver(
        builder.build(), config(processing_exception_handler="log_and_continue")
    ) as driver:
        for ts in (0, 10, 25, 26):
            driver.pipe_raw("in", b"k", str(ts).encode(), ts)
        assert driver.metrics.processing_errors == 1
        (letter,) = dead_letters(driver)
    assert (letter.key, letter.value, letter.timestamp) == (None, None, 25)
    headers = headers_of(letter)
    assert headers["__streams.errors.topic"] == b""
    assert headers["__streams.errors.partition"] == b"-1"
    assert headers["__streams.errors.offset"] == b"-1"
    assert headers["__streams.errors.message"] == b"tick at 25"


# -- deserialization ------------------------------------------------------------------


def test_deserialization_error_dead_letters_the_raw_bytes() -> None:
    builder = StreamsBuilder()
    builder.stream("in", Consumed.with_(Serdes.String(), Serdes.Long())).to("out")
    with TopologyTestDriver(builder.build(), config()) as driver:
        driver.pipe_raw("in", b"k", b"\x00\x07", 5)  # 2 bytes: not a Long
        assert driver.metrics.deserialization_errors == 1
        (letter,) = dead_letters(driver)
    assert (letter.key, letter.value, letter.timestamp) == (b"k", b"\x00\x07", 5)
    assert headers_of(letter)["__streams.errors.offset"] == b"0"


def test_a_negative_timestamp_is_a_deserialization_failure() -> None:
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    with TopologyTestDriver(
        builder.build(), config(deserialization_exception_handler="log_and_fail")
    ) as driver:
        with pytest.raises(HandlerFailed, match=r"record in\[0\]@0 .*invalid timestamp -5"):
            driver.pipe_raw("in", b"k", b"v", -5)
        assert driver.metrics.invalid_timestamps == 1


# -- production (KIP-1065) --------------------------------------------------------------


class _Refusing(Serde[str]):
    def __init__(self) -> None:
        def serialize(value: str) -> bytes:
            if value == "unserializable":
                raise TypeError("no bytes for that")
            return value.encode()

        super().__init__("Refusing", serialize, bytes.decode)


def production_topology() -> Any:
    from topicflow import Produced

    builder = StreamsBuilder()
    builder.stream("in").to("out", Produced.with_(Serdes.String(), _Refusing()))
    return builder.build()


def test_a_serialization_failure_goes_to_the_production_handler() -> None:
    with TopologyTestDriver(
        production_topology(), config(production_exception_handler="log_and_continue")
    ) as driver:
        driver.pipe_raw("in", b"a", b"fine", 1)
        driver.pipe_raw("in", b"b", b"unserializable", 2)
        driver.pipe_raw("in", b"c", b"fine too", 3)
        out = driver.create_output_topic("out").read_values_to_list()
        assert out == ["fine", "fine too"]
        assert driver.metrics.production_errors == 1
        assert driver.metrics.processing_errors == 0
        (letter,) = dead_letters(driver)
    assert (letter.key, letter.value) == (b"b", b"unserializable")
    assert headers_of(letter)["__streams.errors.exception"] == b"TypeError: no bytes for that"


def test_production_fails_by_default_and_is_not_rewrapped_as_processing() -> None:
    with TopologyTestDriver(production_topology(), config()) as driver:
        with pytest.raises(HandlerFailed) as failed:
            driver.pipe_raw("in", b"b", b"unserializable", 2)
        assert driver.metrics.processing_errors == 0
    message = str(failed.value)
    assert message.startswith("record in[0]@0 in task 0_0: producing to out failed: TypeError")
    assert "production_exception_handler is log_and_fail" in message


# -- records an external system refused (sinks) -------------------------------------------


class _Sink(Processor[str, str, None, None]):
    """Buffers values, writes them at commit; the system refuses those starting with 'x'."""

    def init(self, context: ProcessorContext[None, None]) -> None:
        self.pending: list[str] = []
        self.written = WRITTEN

    def process(self, record: Record[str, str]) -> None:
        self.pending.append(record.value)

    def flush(self) -> None:
        refused = [
            RefusedRecord(v.encode(), json.dumps({"v": v}).encode(), ValueError(f"refused {v}"))
            for v in self.pending
            if v.startswith("x")
        ]
        self.written.extend(v for v in self.pending if not v.startswith("x"))
        self.pending.clear()
        if refused:
            raise RecordsRefused("test system", refused)


WRITTEN: list[str] = []


def test_records_a_sink_could_not_write_are_dead_lettered_and_the_commit_goes_on() -> None:
    WRITTEN.clear()
    builder = StreamsBuilder()
    builder.stream("in").process(_Sink, named="sink")
    with TopologyTestDriver(
        builder.build(), config(processing_exception_handler="log_and_continue")
    ) as driver:
        for i, value in enumerate(["a", "x1", "b", "x2"]):
            driver.pipe_raw("in", b"k", value.encode(), 100 + i)
        assert WRITTEN == ["a", "b"]
        assert driver.metrics.sink_errors == 2
        letters = dead_letters(driver)
    assert [(r.key, r.value) for r in letters] == [(b"x1", b'{"v": "x1"}'), (b"x2", b'{"v": "x2"}')]
    assert headers_of(letters[0])["__streams.errors.offset"] == b"-1"
    assert headers_of(letters[0])["__streams.errors.message"] == b"refused x1"


# -- the pieces ---------------------------------------------------------------------------


def test_exception_text_is_javas_to_string() -> None:
    assert exception_text(ValueError("bad")) == "ValueError: bad"
    assert exception_text(ValueError()) == "ValueError"
    assert exception_text(ConfigError("x")) == "topicflow.errors.ConfigError: x"


def test_a_dead_letter_too_large_to_send_goes_without_its_value() -> None:
    from confluent_kafka import KafkaError, KafkaException

    sent: list[tuple[Any, ...]] = []

    class _Sender:
        def send(self, topic: str, key: Any, value: Any, ts: int, headers: Any, p: int) -> None:
            if value is not None and len(value) > 10:
                raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
            sent.append((topic, key, value, ts, headers, p))

        def partition_count(self, topic: str) -> int:
            return 1

    errors = ErrorHandling(config(processing_exception_handler="log_and_continue"), WorkerMetrics())
    errors.sender = _Sender()
    refused = RefusedRecord(b"k", b"a value longer than ten bytes", ValueError("too long"))
    errors.records_refused("0_1", "sink", refused, 9)
    ((topic, key, value, ts, headers, partition),) = sent
    assert (topic, key, value, ts, partition) == (DLQ, b"k", None, 9, -1)
    assert dict(headers)[HEADER_ERRORS_VALUE_DROPPED] == b"29"


def test_headers_are_capped() -> None:
    errors = ErrorHandling(config(processing_exception_handler="log_and_continue"), WorkerMetrics())
    sent: list[Any] = []

    class _Sender:
        def send(self, *args: Any) -> None:
            sent.append(args)

        def partition_count(self, topic: str) -> int:
            return 1

    errors.sender = _Sender()
    huge = "x" * 100_000
    errors.records_refused("0_1", "sink", RefusedRecord(b"k", b"v", ValueError(huge)), 0)
    headers = dict(sent[0][4])
    assert len(headers["__streams.errors.message"]) < 17_000
    assert headers["__streams.errors.message"].endswith(b"(83616 more characters)")


def test_handler_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="production_exception_handler must be"):
        config(production_exception_handler="retry")
    with pytest.raises(ConfigError, match="errors_dead_letter_queue_topic_name"):
        config(errors_dead_letter_queue_topic_name=" ")
    with pytest.raises(ConfigError, match="task_timeout_ms"):
        config(task_timeout_ms=0)
    # Kafka Streams' property names, old and new.
    props = StreamsConfig.from_properties(
        {
            "application.id": "a",
            "default.deserialization.exception.handler": "log_and_fail",
            "processing.exception.handler": "log_and_continue",
            "default.production.exception.handler": "log_and_continue",
            "errors.dead.letter.queue.topic.name": "dlq",
            "task.timeout.ms": 1000,
        }
    )
    assert props.deserialization_exception_handler == "log_and_fail"
    assert props.processing_exception_handler == "log_and_continue"
    assert props.production_exception_handler == "log_and_continue"
    assert props.errors_dead_letter_queue_topic_name == "dlq"
    assert props.task_timeout_ms == 1000
    # The producer retries a record as long as the worker waits for it.
    assert props.producer_client_config()["message.timeout.ms"] == 1000


def test_dropped_records_summary_adds_every_cause() -> None:
    metrics = WorkerMetrics(
        deserialization_errors=1, processing_errors=2, production_errors=3, sink_errors=4
    )
    metrics.late_records = 5
    metrics.dropped_records = 6
    metrics.dead_lettered = 10
    assert dropped_records_summary(metrics.as_dict()) == (
        "dropped-records=21 (deserialization_errors=1, processing_errors=2, "
        "production_errors=3, sink_errors=4, late_records=5, null_key_or_value=6), "
        "dead-lettered=10"
    )
    assert dropped_records_summary(WorkerMetrics().as_dict()) == (
        "dropped-records=0, dead-lettered=0"
    )


def test_a_failure_while_a_cache_flushes_has_no_source_record() -> None:
    """A cached aggregate is forwarded at commit, after its input records: the record
    processed last is not its source, so the context names none."""
    from topicflow import Produced

    def serialize(count: int) -> bytes:
        if count == 2:
            raise ValueError("two is refused")
        return str(count).encode()

    counts: Serde[int] = Serde("Refusing", serialize, int)
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count()
        .to_stream()
        .to("out", Produced.with_(Serdes.String(), counts))
    )
    with TopologyTestDriver(
        builder.build(), config(production_exception_handler="log_and_continue")
    ) as driver:
        for i, key in enumerate(["a", "a", "b"]):
            driver.pipe_raw("in", key.encode(), b"v", 10 + i)
        out = driver.create_output_topic("out").read_key_values_to_list()
        assert [tuple(kv) for kv in out] == [("a", "1"), ("b", "1")]
        (letter,) = dead_letters(driver)
    assert (letter.key, letter.value, letter.timestamp) == (None, None, 11)
    assert headers_of(letter)["__streams.errors.topic"] == b""
    assert headers_of(letter)["__streams.errors.offset"] == b"-1"


def test_the_context_names_the_node_that_failed() -> None:
    """Kafka's ErrorHandlerContext.processorNodeId: found from the traceback, among
    nodes of the same kind (shared code, other closures) and user processors."""
    seen: list[str | None] = []

    def handler(context: ErrorHandlerContext, _record: Any, _error: Exception) -> HandlerResponse:
        seen.append(context.processor_node_id)
        return HandlerResponse.CONTINUE

    def strict(value: str) -> str:
        if value.startswith("bad"):
            raise ValueError(value)
        return value

    builder = StreamsBuilder()
    (
        builder.stream("in")
        .map_values(str.strip, "strip")
        .map_values(strict, "check")
        .map_values(str.upper, "shout")
        .process(_Ticking, named="ticking")
        .to("out")
    )
    with TopologyTestDriver(
        builder.build(), config(processing_exception_handler=handler)
    ) as driver:
        driver.pipe_raw("in", b"k", b" bad ", 0)  # in "check", not in "strip" or "shout"
        driver.pipe_raw("in", b"k", b"good", 0)
        driver.pipe_raw("in", b"k", b"x", 25)  # the punctuator of "ticking" raises
    assert seen == ["check", "ticking"]


def test_the_metrics_line_puts_dropped_records_first_then_every_other_metric() -> None:
    from topicflow.runtime.runner import metrics_summary

    metrics = WorkerMetrics(records_consumed=9, records_produced=8, commits=2, sink_errors=1)
    metrics.duplicates_skipped = 3
    line = metrics_summary(metrics.as_dict())
    assert line.startswith(
        "records_consumed=9, records_produced=8, commits=2, "
        "dropped-records=1 (sink_errors=1), dead-lettered=0; "
    )
    assert "duplicates_skipped=3" in line and "restored_records=0" in line
    assert "sink_errors=1" not in line.split(";", 1)[1]  # said once
