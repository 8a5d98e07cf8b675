"""The Processor API: lifecycle, records, forwarding, punctuation, metadata, errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from topicflow import (
    STREAM_TIME,
    WALL_CLOCK_TIME,
    Processor,
    ProcessorContext,
    PunctuationType,
    Record,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    StreamsException,
    Topology,
)
from topicflow.processor.api import Cancellable
from topicflow.testing import TopologyTestDriver

APP_ID = "papi-test"


def string_config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id=APP_ID,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **overrides,
    )


@dataclass
class Log:
    """What processors saw, shared by every instance a supplier makes."""

    inits: list[str] = field(default_factory=list)  # task ids
    records: list[Record[Any, Any]] = field(default_factory=list)
    punctuations: list[int] = field(default_factory=list)
    closes: int = 0


def single_processor_topology(supplier: Callable[[], Processor[Any, Any, Any, Any]]) -> Topology:
    """in -> source -> proc -> sink -> out, through the Processor API."""
    return (
        Topology()
        .add_source("source", "in")
        .add_processor("proc", supplier, "source")
        .add_sink("sink", "out", "proc")
    )


def out_records(driver: TopologyTestDriver, topic: str = "out") -> list[tuple[Any, Any, int]]:
    return [
        (r.key, r.value, r.timestamp)
        for r in driver.create_output_topic(topic).read_records_to_list()
    ]


# -- lifecycle and the record ----------------------------------------------------------------------


class Recording(Processor[str, str, str, str]):
    def __init__(self, log: Log) -> None:
        self.log = log

    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context
        self.log.inits.append(context.task_id)

    def process(self, record: Record[str, str]) -> None:
        self.log.records.append(record)
        self.context.forward(record.with_value(record.value.upper()))

    def close(self) -> None:
        self.log.closes += 1


def test_init_once_per_task_process_per_record_close_on_driver_close() -> None:
    log = Log()
    driver = TopologyTestDriver(single_processor_topology(lambda: Recording(log)), string_config())
    source = driver.create_input_topic("in")
    for i in range(5):
        source.pipe_input(f"k{i}", f"v{i}")
    assert log.inits == ["0_0"]
    assert len(log.records) == 5
    assert log.closes == 0
    driver.close()
    assert log.closes == 1


def test_one_processor_instance_per_task() -> None:
    first, second = Log(), Log()
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .process(lambda: Recording(first))
        .repartition()
        .process(lambda: Recording(second))
        .to("out")
    )
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v")
        driver.create_input_topic("in").pipe_input("k", "w")
        # The second processor upper-cases what the first already upper-cased.
        assert out_records(driver) == [("k", "V", 0), ("k", "W", 0)]
    assert first.inits == ["0_0"]
    assert second.inits == ["1_0"]
    assert (first.closes, second.closes) == (1, 1)


def test_process_gets_the_whole_input_record() -> None:
    log = Log()
    headers = [("h1", b"x"), ("h2", None)]
    with TopologyTestDriver(
        single_processor_topology(lambda: Recording(log)), string_config()
    ) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k0", "v0", timestamp=100)
        source.pipe_input("k1", "v1", timestamp=250, headers=headers)
    first, second = log.records
    assert (first.key, first.value, first.timestamp, first.headers) == ("k0", "v0", 100, None)
    assert (second.key, second.value, second.timestamp) == ("k1", "v1", 250)
    assert second.headers == headers
    assert [(r.topic, r.partition, r.offset) for r in log.records] == [("in", 0, 0), ("in", 0, 1)]


def test_forwarded_record_reaches_the_sink_with_its_timestamp_and_headers() -> None:
    with TopologyTestDriver(
        single_processor_topology(lambda: Recording(Log())), string_config()
    ) as driver:
        driver.create_input_topic("in").pipe_input("k", "hello", timestamp=7, headers=[("a", b"1")])
        record = driver.create_output_topic("out").read_record()
    assert (record.key, record.value, record.timestamp) == ("k", "HELLO", 7)
    assert record.headers == [("a", b"1")]


def test_context_knows_the_application_and_task() -> None:
    seen: list[tuple[str, str]] = []

    class Ids(Processor[Any, Any, Any, Any]):
        def init(self, context: ProcessorContext[Any, Any]) -> None:
            seen.append((context.application_id, context.task_id))

        def process(self, record: Record[Any, Any]) -> None:
            pass

    with TopologyTestDriver(single_processor_topology(Ids), string_config()):
        pass
    assert seen == [(APP_ID, "0_0")]


def test_a_processor_subclass_is_its_own_supplier() -> None:
    class Upper(Processor[str, str, str, str]):
        def process(self, record: Record[str, str]) -> None:
            self.context.forward(record.with_value(record.value.upper()))

    with TopologyTestDriver(single_processor_topology(Upper), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "abc")
        assert out_records(driver) == [("k", "ABC", 0)]


# -- forwarding ------------------------------------------------------------------------------------


class Router(Processor[str, str, str, str]):
    """Sends values starting with 'l' to the left sink only, the rest to the right only,
    and 'both' to every child."""

    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context

    def process(self, record: Record[str, str]) -> None:
        if record.value == "both":
            self.context.forward(record)
        elif record.value.startswith("l"):
            self.context.forward(record, child_name="left-sink")
        else:
            self.context.forward(record.with_value(record.value + "?"), "right-sink")


def router_topology() -> Topology:
    return (
        Topology()
        .add_source("source", "in")
        .add_processor("router", Router, "source")
        .add_sink("left-sink", "left", "router")
        .add_sink("right-sink", "right", "router")
    )


def test_forward_to_a_named_child_only() -> None:
    with TopologyTestDriver(router_topology(), string_config()) as driver:
        source = driver.create_input_topic("in")
        for value in ("lemon", "orange", "both", "lime"):
            source.pipe_input("k", value)
        left = driver.create_output_topic("left").read_values_to_list()
        right = driver.create_output_topic("right").read_values_to_list()
    assert left == ["lemon", "both", "lime"]
    assert right == ["orange?", "both"]


def test_forward_to_an_unknown_child_fails_with_the_children_named() -> None:
    class Lost(Processor[Any, Any, Any, Any]):
        def process(self, record: Record[Any, Any]) -> None:
            self.context.forward(record, child_name="nowhere")

    with (
        TopologyTestDriver(single_processor_topology(Lost), string_config()) as driver,
        pytest.raises(StreamsException, match=r"nowhere.*sink"),
    ):
        driver.create_input_topic("in").pipe_input("k", "v")


def test_forward_with_a_new_timestamp_changes_the_output_timestamp() -> None:
    class Later(Processor[str, str, str, str]):
        def process(self, record: Record[str, str]) -> None:
            self.context.forward(record.with_timestamp(record.timestamp + 1000))
            self.context.forward(record.with_value("same time"))

    with TopologyTestDriver(single_processor_topology(Later), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v", timestamp=5)
        assert out_records(driver) == [("k", "v", 1005), ("k", "same time", 5)]


def test_forward_with_new_headers() -> None:
    class Tag(Processor[str, str, str, str]):
        def process(self, record: Record[str, str]) -> None:
            headers = [*(record.headers or []), ("seen", b"1")]
            self.context.forward(record.with_headers(headers))

    with TopologyTestDriver(single_processor_topology(Tag), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v", headers=[("a", b"0")])
        assert driver.create_output_topic("out").read_record().headers == [
            ("a", b"0"),
            ("seen", b"1"),
        ]


def test_record_copies_leave_the_original_unchanged() -> None:
    record = Record("k", "v", 10, [("h", b"1")], "t", 0, 5)
    changed = record.with_key("k2").with_value("v2").with_timestamp(20).with_headers(None)
    assert (record.key, record.value, record.timestamp, record.headers) == (
        "k",
        "v",
        10,
        [("h", b"1")],
    )
    assert (changed.key, changed.value, changed.timestamp, changed.headers) == (
        "k2",
        "v2",
        20,
        None,
    )
    assert (changed.topic, changed.partition, changed.offset) == ("t", 0, 5)


# -- punctuation -----------------------------------------------------------------------------------


class Punctuating(Processor[str, str, str, str]):
    """Schedules one punctuator in init; it forwards a record and logs the time it fires at."""

    def __init__(
        self, log: Log, interval: timedelta | int, ptype: PunctuationType, forward: bool = True
    ) -> None:
        self.log = log
        self.interval = interval
        self.ptype = ptype
        self.forward = forward

    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context
        self.schedule: Cancellable = context.schedule(self.interval, self.ptype, self.punctuate)

    def punctuate(self, timestamp: int) -> None:
        self.log.punctuations.append(timestamp)
        metadata = self.context.record_metadata()
        assert metadata is None or metadata.topic() is None
        if self.forward:
            self.context.forward(Record("tick", str(timestamp), timestamp))

    def process(self, record: Record[str, str]) -> None:
        self.log.records.append(record)
        if record.value == "cancel":
            self.schedule.cancel()


def punctuation_driver(
    log: Log, interval: timedelta | int, ptype: PunctuationType, forward: bool = True
) -> TopologyTestDriver:
    topology = single_processor_topology(lambda: Punctuating(log, interval, ptype, forward))
    return TopologyTestDriver(topology, string_config())


def test_stream_time_punctuation_fires_at_first_record_then_every_interval() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        fired_after: dict[int, list[int]] = {}
        for ts in (0, 5, 9, 10, 15, 19, 20, 21, 30):
            source.pipe_input("k", "v", timestamp=ts)
            fired_after[ts] = list(log.punctuations)
    assert log.punctuations == [0, 10, 20, 30]
    assert fired_after[0] == [0]
    assert fired_after[9] == [0]
    assert fired_after[10] == [0, 10]
    assert fired_after[21] == [0, 10, 20]


def test_stream_time_punctuation_fires_once_for_a_jump_of_several_intervals() -> None:
    """Kafka Streams' PunctuationSchedule.next: one firing for the missed intervals, then
    the next on the schedule's grid (multiples of the interval), not a full interval later."""
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "v", timestamp=0)
        source.pipe_input("k", "v", timestamp=47)  # 4 intervals later: one firing
        assert log.punctuations == [0, 47]
        source.pipe_input("k", "v", timestamp=49)
        assert log.punctuations == [0, 47]
        source.pipe_input("k", "v", timestamp=50)  # the grid's next point, not 57
        assert log.punctuations == [0, 47, 50]


def test_stream_time_does_not_go_back_on_out_of_order_records() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        for ts in (100, 3, 4, 105, 50, 110):
            source.pipe_input("k", "v", timestamp=ts)
    assert log.punctuations == [100, 110]


def test_stream_time_punctuation_needs_records() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME) as driver:
        driver.advance_wall_clock_time(timedelta(hours=1))
        assert log.punctuations == []


def test_stream_time_punctuation_is_aligned_like_kafka_streams() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        for ts in (5, 10, 15, 20):
            source.pipe_input("k", "v", timestamp=ts)
    assert log.punctuations == [5, 10, 20]


def test_wall_clock_punctuation_fires_on_advance() -> None:
    log = Log()
    with punctuation_driver(log, timedelta(seconds=1), WALL_CLOCK_TIME, forward=False) as driver:
        driver.advance_wall_clock_time(999)
        assert log.punctuations == []
        driver.advance_wall_clock_time(1)
        assert log.punctuations == [1000]
        driver.advance_wall_clock_time(timedelta(milliseconds=500))
        assert log.punctuations == [1000]
        driver.advance_wall_clock_time(500)
        assert log.punctuations == [1000, 2000]
        driver.advance_wall_clock_time(3500)  # three intervals missed: one firing
        assert log.punctuations == [1000, 2000, 5500]
        # The next is on the schedule's grid (PunctuationSchedule.next): 6000, not 6500.
        driver.advance_wall_clock_time(499)
        assert log.punctuations == [1000, 2000, 5500]
        driver.advance_wall_clock_time(1)
        assert log.punctuations == [1000, 2000, 5500, 6000]


def test_wall_clock_punctuation_is_not_driven_by_record_timestamps() -> None:
    log = Log()
    with punctuation_driver(log, 100, WALL_CLOCK_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "v", timestamp=10_000)
        source.pipe_input("k", "v", timestamp=20_000)
        assert log.punctuations == []
        driver.advance_wall_clock_time(100)
        assert log.punctuations == [100]


def test_cancel_stops_a_punctuator() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME, forward=False) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "v", timestamp=0)
        source.pipe_input("k", "v", timestamp=10)
        source.pipe_input("k", "cancel", timestamp=15)
        source.pipe_input("k", "v", timestamp=20)
        source.pipe_input("k", "v", timestamp=100)
    assert log.punctuations == [0, 10]


def test_cancel_stops_a_wall_clock_punctuator() -> None:
    log = Log()
    with punctuation_driver(log, 10, WALL_CLOCK_TIME, forward=False) as driver:
        driver.advance_wall_clock_time(10)
        driver.create_input_topic("in").pipe_input("k", "cancel")
        driver.advance_wall_clock_time(10)
        driver.advance_wall_clock_time(100)
    assert log.punctuations == [10]


def test_punctuator_can_cancel_itself() -> None:
    fired: list[int] = []

    class Once(Processor[Any, Any, Any, Any]):
        def init(self, context: ProcessorContext[Any, Any]) -> None:
            self.schedule = context.schedule(5, WALL_CLOCK_TIME, self.fire)

        def fire(self, timestamp: int) -> None:
            fired.append(timestamp)
            self.schedule.cancel()

        def process(self, record: Record[Any, Any]) -> None:
            pass

    with TopologyTestDriver(single_processor_topology(Once), string_config()) as driver:
        for _ in range(4):
            driver.advance_wall_clock_time(5)
    assert fired == [5]


def test_punctuator_forwards_records_stamped_with_the_punctuation_time() -> None:
    log = Log()
    with punctuation_driver(log, 1000, WALL_CLOCK_TIME) as driver:
        source = driver.create_input_topic("in")
        driver.advance_wall_clock_time(1000)
        source.pipe_input("k", "v", timestamp=42)
        driver.advance_wall_clock_time(1000)
        assert out_records(driver) == [("tick", "1000", 1000), ("tick", "2000", 2000)]


def test_stream_time_punctuator_forwards_records_stamped_with_stream_time() -> None:
    log = Log()
    with punctuation_driver(log, 10, STREAM_TIME) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "v", timestamp=3)
        source.pipe_input("k", "v", timestamp=14)
        assert out_records(driver) == [("tick", "3", 3), ("tick", "14", 14)]


def test_schedule_rejects_an_interval_below_one_ms() -> None:
    class Bad(Processor[Any, Any, Any, Any]):
        def init(self, context: ProcessorContext[Any, Any]) -> None:
            context.schedule(timedelta(microseconds=10), STREAM_TIME, lambda t: None)

        def process(self, record: Record[Any, Any]) -> None:
            pass

    with pytest.raises(StreamsException, match="interval"):
        TopologyTestDriver(single_processor_topology(Bad), string_config())


def test_context_reports_stream_and_wall_clock_time() -> None:
    times: list[tuple[int, int]] = []

    class Clocks(Processor[Any, Any, Any, Any]):
        def process(self, record: Record[Any, Any]) -> None:
            times.append(
                (self.context.current_stream_time_ms(), self.context.current_system_time_ms())
            )

    topology = single_processor_topology(Clocks)
    with TopologyTestDriver(topology, string_config(), initial_wall_clock_time_ms=1000) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "v", timestamp=50)
        driver.advance_wall_clock_time(7)
        source.pipe_input("k", "v", timestamp=20)
    assert times == [(50, 1000), (50, 1007)]


# -- record metadata ---------------------------------------------------------------------------


def test_record_metadata_names_topic_partition_offset() -> None:
    seen: list[tuple[str | None, int | None, int | None]] = []

    class Meta(Processor[Any, Any, Any, Any]):
        def process(self, record: Record[Any, Any]) -> None:
            metadata = self.context.record_metadata()
            assert metadata is not None
            seen.append((metadata.topic(), metadata.partition(), metadata.offset()))

    topology = (
        Topology()
        .add_source("a", "topic-a")
        .add_source("b", "topic-b")
        .add_processor("meta", Meta, "a", "b")
    )
    with TopologyTestDriver(topology, string_config()) as driver:
        a = driver.create_input_topic("topic-a")
        b = driver.create_input_topic("topic-b")
        a.pipe_input("x")
        a.pipe_input("y")
        b.pipe_input("z")
        a.pipe_input("w")
    assert seen == [("topic-a", 0, 0), ("topic-a", 0, 1), ("topic-b", 0, 0), ("topic-a", 0, 2)]


def test_record_metadata_is_absent_in_a_wall_clock_punctuator() -> None:
    seen: list[Any] = []

    class Meta(Processor[Any, Any, Any, Any]):
        def init(self, context: ProcessorContext[Any, Any]) -> None:
            self.context = context
            context.schedule(10, WALL_CLOCK_TIME, lambda t: seen.append(context.record_metadata()))

        def process(self, record: Record[Any, Any]) -> None:
            pass

    with TopologyTestDriver(single_processor_topology(Meta), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v")
        driver.advance_wall_clock_time(10)
    assert seen == [None]


# -- processing errors ----------------------------------------------------------------------------


class Fragile(Processor[str, str, str, str]):
    def process(self, record: Record[str, str]) -> None:
        if record.value == "boom":
            raise ValueError("cannot handle boom")
        self.context.forward(record)


def test_processing_error_with_log_and_continue_skips_and_counts() -> None:
    config = string_config(processing_exception_handler="log_and_continue")
    with TopologyTestDriver(single_processor_topology(Fragile), config) as driver:
        source = driver.create_input_topic("in")
        for value in ("a", "boom", "b", "boom", "c"):
            source.pipe_input("k", value)
        assert driver.create_output_topic("out").read_values_to_list() == ["a", "b", "c"]
        assert driver.metrics.processing_errors == 2
        assert driver.metrics.records_consumed == 5


def test_processing_error_fails_by_default() -> None:
    with TopologyTestDriver(single_processor_topology(Fragile), string_config()) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k", "a")
        with pytest.raises(StreamsException) as info:
            source.pipe_input("k", "boom")
        message = str(info.value)
        assert "in[0]@1" in message
        assert "ValueError" in message
        assert "cannot handle boom" in message
        assert isinstance(info.value.__cause__, ValueError)
        assert driver.metrics.processing_errors == 1


def test_processing_error_in_a_dsl_lambda_is_handled_the_same() -> None:
    builder = StreamsBuilder()
    builder.stream("in").map_values(lambda v: str(10 // int(v))).to("out")
    config = string_config(processing_exception_handler="log_and_continue")
    with TopologyTestDriver(builder.build(), config) as driver:
        source = driver.create_input_topic("in")
        for value in ("2", "0", "5"):
            source.pipe_input("k", value)
        assert driver.create_output_topic("out").read_values_to_list() == ["5", "2"]
        assert driver.metrics.processing_errors == 1


def test_failing_init_is_reported_with_the_processor_name() -> None:
    class BadInit(Processor[Any, Any, Any, Any]):
        def init(self, context: ProcessorContext[Any, Any]) -> None:
            raise RuntimeError("no database")

    with pytest.raises(StreamsException, match=r"'proc'.*no database"):
        TopologyTestDriver(single_processor_topology(BadInit), string_config())


def test_failing_close_is_reported_after_closing_the_others() -> None:
    closed: list[str] = []

    class BadClose(Processor[Any, Any, Any, Any]):
        def process(self, record: Record[Any, Any]) -> None:
            pass

        def close(self) -> None:
            closed.append("bad")
            raise RuntimeError("close failed")

    class GoodClose(BadClose):
        def close(self) -> None:
            closed.append("good")

    topology = (
        Topology()
        .add_source("source", "in")
        .add_processor("bad", BadClose, "source")
        .add_processor("good", GoodClose, "source")
    )
    driver = TopologyTestDriver(topology, string_config())
    with pytest.raises(StreamsException, match="close failed"):
        driver.close()
    assert sorted(closed) == ["bad", "good"]
