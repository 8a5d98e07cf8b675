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
    Consumed,
    Grouped,
    Joined,
    KGroupedStream,
    KStream,
    KTable,
    Materialized,
    Named,
    Produced,
    Repartitioned,
    SessionWindow,
    SessionWindowedKStream,
    SessionWindows,
    SlidingWindowedKStream,
    SlidingWindows,
    StreamsBuilder,
    Suppressed,
    TableJoined,
    TimeWindow,
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
    "Cancellable",
    "ConfigError",
    "Consumed",
    "ErrorHandlerContext",
    "Grouped",
    "HandlerFailed",
    "HandlerResponse",
    "Joined",
    "KGroupedStream",
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
    "SessionWindowedKStream",
    "SessionWindows",
    "SlidingWindowedKStream",
    "SlidingWindows",
    "State",
    "StreamsBuilder",
    "StreamsConfig",
    "StreamsException",
    "Suppressed",
    "TableJoined",
    "TestInputTopic",
    "TestOutputTopic",
    "TestRecord",
    "TimeWindow",
    "TimeWindowedKStream",
    "TimeWindows",
    "TopicflowError",
    "Topology",
    "TopologyError",
    "TopologyTestDriver",
    "Windowed",
]
