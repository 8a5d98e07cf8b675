"""The DSL: what users write."""

from topicflow.dsl.builder import StreamsBuilder
from topicflow.dsl.kgrouped import KGroupedStream, TimeWindowedKStream
from topicflow.dsl.kstream import BranchedKStream, KStream
from topicflow.dsl.ktable import KTable
from topicflow.dsl.options import (
    Branched,
    Consumed,
    Grouped,
    Joined,
    Materialized,
    Named,
    Produced,
    Repartitioned,
    Suppressed,
    TableJoined,
)
from topicflow.dsl.session_windows import SessionWindowedKStream
from topicflow.dsl.sliding_windows import SlidingWindowedKStream
from topicflow.dsl.windows import (
    SessionWindow,
    SessionWindows,
    SlidingWindows,
    TimeWindow,
    TimeWindows,
    Windowed,
)

__all__ = [
    "Branched",
    "BranchedKStream",
    "Consumed",
    "Grouped",
    "Joined",
    "KGroupedStream",
    "KStream",
    "KTable",
    "Materialized",
    "Named",
    "Produced",
    "Repartitioned",
    "SessionWindow",
    "SessionWindowedKStream",
    "SessionWindows",
    "SlidingWindowedKStream",
    "SlidingWindows",
    "StreamsBuilder",
    "Suppressed",
    "TableJoined",
    "TimeWindow",
    "TimeWindowedKStream",
    "TimeWindows",
    "Windowed",
]
