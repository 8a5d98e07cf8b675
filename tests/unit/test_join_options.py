"""The option objects of the new operations: each builder sets what its name says,
and leaves the object it was called on as it was (they are frozen values)."""

from __future__ import annotations

from topicflow import StreamJoined
from topicflow.dsl.options import BufferConfig, Materialized, TableJoined
from topicflow.serdes import Serdes


def test_buffer_config_builders() -> None:
    bounded = BufferConfig.unbounded().with_max_records(5).with_max_bytes(100)
    assert (bounded.record_limit, bounded.byte_limit) == (5, 100)
    assert BufferConfig.max_records(5).emit_when_full
    assert bounded.with_no_bound() == BufferConfig.unbounded()
    assert BufferConfig.unbounded().record_limit is None


def test_stream_joined_builders() -> None:
    base = StreamJoined.as_("joins")
    changed = base.with_other_value_serde(Serdes.Long()).persistent_stores()
    assert changed.other_value_serde is not None and changed.persistent
    assert changed.in_memory_stores().persistent is False
    assert base.with_logging_disabled().with_logging_enabled().logging is True
    assert base.with_logging_disabled().logging is False
    assert base.other_value_serde is None and not base.persistent  # unchanged


def test_table_joined_and_materialized_builders() -> None:
    def partitioner(topic: str, key: object, value: object, partitions: int) -> int:
        return 0

    joined = TableJoined("fk").with_other_partitioner(partitioner)
    assert (joined.name, joined.other_partitioner) == ("fk", partitioner)
    disabled = Materialized.as_("s").with_caching_disabled()
    assert disabled.caching is False and disabled.with_caching_enabled().caching is True
