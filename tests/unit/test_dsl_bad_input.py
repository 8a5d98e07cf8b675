"""Records that cannot be read: skipped and counted by default, fatal with log_and_fail."""

from __future__ import annotations

import re
from typing import Any

import pytest

from topicflow import Consumed, Serdes, StreamsBuilder, StreamsConfig, StreamsException
from topicflow.testing import TopologyTestDriver

LONG = Serdes.Long()


def long_values_driver(**overrides: Any) -> TopologyTestDriver:
    """numbers (String keys, Long values) -> value * 2 -> doubled."""
    builder = StreamsBuilder()
    (
        builder.stream("numbers", Consumed.with_(Serdes.String(), Serdes.Long()))
        .map_values(lambda v: v * 2)
        .to("doubled")
    )
    config = StreamsConfig(
        application_id="bad-input-test",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.Long(),
        **overrides,
    )
    return TopologyTestDriver(builder.build(), config)


def pipe_long(driver: TopologyTestDriver, key: str, value: int, timestamp: int = 0) -> None:
    driver.pipe_raw("numbers", key.encode(), LONG.serialize(value), timestamp)


def doubled(driver: TopologyTestDriver) -> list[tuple[str, int]]:
    return [tuple(kv) for kv in driver.create_output_topic("doubled").read_key_values_to_list()]


def test_undeserializable_value_is_skipped_and_counted_by_default() -> None:
    with long_values_driver() as driver:
        pipe_long(driver, "a", 1)
        driver.pipe_raw("numbers", b"b", b"\x00\x00\x07", 0)  # 3 bytes: not a Long
        pipe_long(driver, "c", 3)
        pipe_long(driver, "d", -4)
        assert doubled(driver) == [("a", 2), ("c", 6), ("d", -8)]
        assert driver.metrics.deserialization_errors == 1
        assert driver.metrics.records_consumed == 3
        assert driver.metrics.invalid_timestamps == 0


def test_every_bad_record_is_counted() -> None:
    with long_values_driver() as driver:
        for bad in (b"", b"\x01", b"\x00" * 9):
            driver.pipe_raw("numbers", b"k", bad, 0)
        pipe_long(driver, "ok", 21)
        assert doubled(driver) == [("ok", 42)]
        assert driver.metrics.deserialization_errors == 3


def test_undeserializable_key_is_skipped_too() -> None:
    builder = StreamsBuilder()
    builder.stream("numbers", Consumed.with_(Serdes.Integer(), Serdes.String())).to("out")
    config = StreamsConfig(
        application_id="bad-key",
        default_key_serde=Serdes.Integer(),
        default_value_serde=Serdes.String(),
    )
    with TopologyTestDriver(builder.build(), config) as driver:
        driver.pipe_raw("numbers", b"\x00\x01", b"short key", 0)
        driver.pipe_raw("numbers", (7).to_bytes(4, "big"), b"good", 0)
        out = driver.create_output_topic("out").read_key_values_to_list()
        assert [tuple(kv) for kv in out] == [(7, "good")]
        assert driver.metrics.deserialization_errors == 1


def test_log_and_fail_raises_naming_topic_partition_and_offset() -> None:
    with long_values_driver(deserialization_exception_handler="log_and_fail") as driver:
        pipe_long(driver, "a", 1)
        pipe_long(driver, "b", 2)
        with pytest.raises(StreamsException) as info:
            driver.pipe_raw("numbers", b"c", b"abc", 0)  # offset 2 of numbers[0]
        message = str(info.value)
        assert "\n" not in message
        assert "numbers" in message
        assert re.search(r"numbers\[0\]@2\b", message), message
        assert "log_and_continue" in message  # says how to skip such records instead
        assert driver.metrics.deserialization_errors == 1
        assert doubled(driver) == [("a", 2), ("b", 4)]


def test_negative_timestamp_is_skipped_and_counted() -> None:
    with long_values_driver() as driver:
        numbers = driver.create_input_topic("numbers")
        numbers.pipe_input("a", 1, timestamp=10)
        numbers.pipe_input("b", 2, timestamp=-1)
        numbers.pipe_input("c", 3, timestamp=20)
        assert doubled(driver) == [("a", 2), ("c", 6)]
        assert driver.metrics.invalid_timestamps == 1
        assert driver.metrics.deserialization_errors == 0
        assert driver.metrics.records_consumed == 2


def test_negative_timestamp_from_an_extractor_is_skipped() -> None:
    def from_value(timestamp: int, key: Any, value: Any, partition_time: int) -> int:
        return int(value)

    builder = StreamsBuilder()
    consumed = Consumed.with_(Serdes.String(), Serdes.Long()).with_timestamp_extractor(from_value)
    builder.stream("numbers", consumed).to("out")
    config = StreamsConfig(
        application_id="extractor",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.Long(),
    )
    with TopologyTestDriver(builder.build(), config) as driver:
        pipe_long(driver, "a", 500, timestamp=1)
        pipe_long(driver, "b", -5, timestamp=1)
        out = driver.create_output_topic("out").read_records_to_list()
        assert [(r.key, r.timestamp) for r in out] == [("a", 500)]
        assert driver.metrics.invalid_timestamps == 1


def test_negative_timestamp_with_log_and_fail_raises() -> None:
    with long_values_driver(deserialization_exception_handler="log_and_fail") as driver:
        with pytest.raises(StreamsException, match=r"numbers\[0\]@0.*timestamp -1"):
            pipe_long(driver, "a", 1, timestamp=-1)
        assert driver.metrics.invalid_timestamps == 1


def test_driver_keeps_working_after_a_fatal_record() -> None:
    with long_values_driver(deserialization_exception_handler="log_and_fail") as driver:
        with pytest.raises(StreamsException):
            driver.pipe_raw("numbers", b"x", b"?", 0)
        pipe_long(driver, "y", 5)
        assert doubled(driver) == [("y", 10)]
