"""The DSL: what users write."""

from topicflow.dsl.builder import StreamsBuilder
from topicflow.dsl.cogrouped import (
    CogroupedKStream,
    SessionWindowedCogroupedKStream,
    TimeWindowedCogroupedKStream,
)
from topicflow.dsl.global_ktable import GlobalKTable
from topicflow.dsl.join_windows import JoinWindows
from topicflow.dsl.kgrouped import KGroupedStream, TimeWindowedKStream
from topicflow.dsl.kgrouped_table import KGroupedTable
from topicflow.dsl.kstream import BranchedKStream, KStream
from topicflow.dsl.ktable import KTable
from topicflow.dsl.options import (
    Branched,
    BufferConfig,
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
from topicflow.dsl.stream_joined import StreamJoined
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
    "BufferConfig",
    "CogroupedKStream",
    "Consumed",
    "GlobalKTable",
    "Grouped",
    "JoinWindows",
    "Joined",
    "KGroupedStream",
    "KGroupedTable",
    "KStream",
    "KTable",
    "Materialized",
    "Named",
    "Produced",
    "Repartitioned",
    "SessionWindow",
    "SessionWindowedCogroupedKStream",
    "SessionWindowedKStream",
    "SessionWindows",
    "SlidingWindowedKStream",
    "SlidingWindows",
    "StreamJoined",
    "StreamsBuilder",
    "Suppressed",
    "TableJoined",
    "TimeWindow",
    "TimeWindowedCogroupedKStream",
    "TimeWindowedKStream",
    "TimeWindows",
    "Windowed",
]
