"""topicflow: the Kafka Streams programming model in Python.

from topicflow import KafkaStreams, StreamsBuilder, StreamsConfig

builder = StreamsBuilder()
builder.stream("textlines").flat_map_values(str.split).to("words")
streams = KafkaStreams(builder.build(), StreamsConfig(application_id="words-app"))
streams.start()

Everything a topology, a processor, a handler or a test is written with
imports from here; the sub-packages are the implementation.
"""

from topicflow.config import KafkaUrl, StreamsConfig
from topicflow.dsl import (
    Branched,
    BranchedKStream,
    BufferConfig,
    CogroupedKStream,
    Consumed,
    GlobalKTable,
    Grouped,
    Joined,
    JoinWindows,
    KGroupedStream,
    KGroupedTable,
    KStream,
    KTable,
    Materialized,
    Named,
    Produced,
    Repartitioned,
    SessionWindow,
    SessionWindowedCogroupedKStream,
    SessionWindowedKStream,
    SessionWindows,
    SlidingWindowedKStream,
    SlidingWindows,
    StreamJoined,
    StreamsBuilder,
    Suppressed,
    TableJoined,
    TimeWindow,
    TimeWindowedCogroupedKStream,
    TimeWindowedKStream,
    TimeWindows,
    Windowed,
)
from topicflow.errors import (
    BrokerUnavailable,
    ConfigError,
    HandlerFailed,
    MissingSourceTopics,
    RecordsRefused,
    RefusedRecord,
    RetriableError,
    StreamsException,
    TopicflowError,
    TopologyError,
)
from topicflow.exception_handlers import ErrorHandlerContext, HandlerResponse
from topicflow.processor import (
    STREAM_TIME,
    WALL_CLOCK_TIME,
    Cancellable,
    Processor,
    ProcessorContext,
    ProcessorSupplier,
    PunctuationType,
    Record,
)
from topicflow.runtime.kafka_streams import KafkaStreams, State
from topicflow.serdes import Serde, Serdes
from topicflow.testing import TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver
from topicflow.topology.topology import Topology

__all__ = [
    "STREAM_TIME",
    "WALL_CLOCK_TIME",
    "Branched",
    "BranchedKStream",
    "BrokerUnavailable",
    "BufferConfig",
    "Cancellable",
    "CogroupedKStream",
    "ConfigError",
    "Consumed",
    "ErrorHandlerContext",
    "GlobalKTable",
    "Grouped",
    "HandlerFailed",
    "HandlerResponse",
    "JoinWindows",
    "Joined",
    "KGroupedStream",
    "KGroupedTable",
    "KStream",
    "KTable",
    "KafkaStreams",
    "KafkaUrl",
    "Materialized",
    "MissingSourceTopics",
    "Named",
    "Processor",
    "ProcessorContext",
    "ProcessorSupplier",
    "Produced",
    "PunctuationType",
    "Record",
    "RecordsRefused",
    "RefusedRecord",
    "Repartitioned",
    "RetriableError",
    "Serde",
    "Serdes",
    "SessionWindow",
    "SessionWindowedCogroupedKStream",
    "SessionWindowedKStream",
    "SessionWindows",
    "SlidingWindowedKStream",
    "SlidingWindows",
    "State",
    "StreamJoined",
    "StreamsBuilder",
    "StreamsConfig",
    "StreamsException",
    "Suppressed",
    "TableJoined",
    "TestInputTopic",
    "TestOutputTopic",
    "TestRecord",
    "TimeWindow",
    "TimeWindowedCogroupedKStream",
    "TimeWindowedKStream",
    "TimeWindows",
    "TopicflowError",
    "Topology",
    "TopologyError",
    "TopologyTestDriver",
    "Windowed",
]
