"""Timestamp extractors: where a record's event time comes from, named as in Kafka Streams.

An extractor is a function `(record_timestamp, key, value, partition_time) -> epoch ms`,
set for all sources with `StreamsConfig(default_timestamp_extractor=...)` or for one
with `Consumed.with_timestamp_extractor(...)`. Without one, the record's own
timestamp is used and records without a valid one are skipped and counted.

    config = StreamsConfig(..., default_timestamp_extractor=WallclockTimestampExtractor)
"""

from __future__ import annotations

import time
from typing import Any

from topicflow.errors import StreamsException


def WallclockTimestampExtractor(  # noqa: N802 - Kafka Streams' name
    record_timestamp: int, key: Any, value: Any, partition_time: int
) -> int:
    """Processing time: the wall clock when the record is processed (the original
    Java example's choice). Results then depend on when records are processed."""
    return time.time_ns() // 1_000_000


def UsePartitionTimeOnInvalidTimestamp(  # noqa: N802
    record_timestamp: int, key: Any, value: Any, partition_time: int
) -> int:
    """The record's timestamp, or the partition's stream time when it has none."""
    if record_timestamp >= 0:
        return record_timestamp
    if partition_time < 0:
        raise StreamsException(
            "record without a valid timestamp before any stream time exists; "
            "set another timestamp extractor"
        )
    return partition_time


def FailOnInvalidTimestamp(  # noqa: N802
    record_timestamp: int, key: Any, value: Any, partition_time: int
) -> int:
    """The record's timestamp; a record without a valid one stops the worker."""
    if record_timestamp < 0:
        raise StreamsException(
            f"record has an invalid timestamp ({record_timestamp}); FailOnInvalidTimestamp "
            "is set: use the default extractor to skip such records"
        )
    return record_timestamp
