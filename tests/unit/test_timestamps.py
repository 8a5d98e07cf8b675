"""Named timestamp extractors, through the test driver."""

from __future__ import annotations

import pytest

from topicflow import Serdes, StreamsBuilder, StreamsConfig, StreamsException
from topicflow.testing import TopologyTestDriver
from topicflow.timestamps import (
    FailOnInvalidTimestamp,
    UsePartitionTimeOnInvalidTimestamp,
    WallclockTimestampExtractor,
)


def _driver(extractor: object) -> TopologyTestDriver:
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    config = StreamsConfig(
        application_id="ts",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        default_timestamp_extractor=extractor,  # type: ignore[arg-type]
    )
    return TopologyTestDriver(builder.build(), config)


def test_wall_clock_extractor_stamps_processing_time() -> None:
    import time

    driver = _driver(WallclockTimestampExtractor)
    before = time.time_ns() // 1_000_000
    driver.create_input_topic("in").pipe_input("v", timestamp=5)
    after = time.time_ns() // 1_000_000
    record = driver.create_output_topic("out").read_record()
    assert before <= record.timestamp <= after


def test_partition_time_replaces_an_invalid_timestamp() -> None:
    driver = _driver(UsePartitionTimeOnInvalidTimestamp)
    topic = driver.create_input_topic("in")
    topic.pipe_input("a", timestamp=1_000)
    topic.pipe_input("b", timestamp=-1)
    out = driver.create_output_topic("out")
    assert [r.timestamp for r in out.read_records_to_list()] == [1_000, 1_000]
    assert driver.metrics.invalid_timestamps == 0


def test_fail_on_invalid_timestamp_stops() -> None:
    driver = _driver(FailOnInvalidTimestamp)
    with pytest.raises(StreamsException, match="invalid timestamp"):
        driver.create_input_topic("in").pipe_input("b", timestamp=-1)
