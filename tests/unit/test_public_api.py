"""What a user writes imports from `topicflow`; a library leaves its host's GC alone."""

from __future__ import annotations

import topicflow
from services.registry import SERVICES
from topicflow import StreamsConfig


def test_everything_a_topology_test_or_handler_needs_is_at_the_top() -> None:
    for name in (
        "StreamsBuilder",
        "KStream",
        "KTable",
        "GlobalKTable",
        "KGroupedStream",
        "KGroupedTable",
        "TimeWindowedKStream",
        "SessionWindowedKStream",
        "SlidingWindowedKStream",
        "TimeWindows",
        "SessionWindows",
        "SlidingWindows",
        "Windowed",
        "Materialized",
        "Grouped",
        "Joined",
        "JoinWindows",
        "StreamJoined",
        "TableJoined",
        "Suppressed",
        "BufferConfig",
        "Processor",
        "Record",
        "TopologyTestDriver",
        "ErrorHandlerContext",
        "HandlerResponse",
        "RecordsRefused",
        "RetriableError",
    ):
        assert name in topicflow.__all__, name
    assert sorted(topicflow.__all__) == sorted(set(topicflow.__all__))
    for name in topicflow.__all__:
        assert getattr(topicflow, name) is not None, name


def test_tune_gc_is_off_for_the_library_and_on_in_the_services() -> None:
    assert StreamsConfig(application_id="a").tune_gc is False
    for service in SERVICES.values():
        assert service.config({}).tune_gc is True, service.name
