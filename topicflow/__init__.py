"""topicflow: the Kafka Streams programming model in Python.

from topicflow import KafkaStreams, StreamsBuilder, StreamsConfig

builder = StreamsBuilder()
builder.stream("textlines").flat_map_values(str.split).to("words")
streams = KafkaStreams(builder.build(), StreamsConfig(application_id="words-app"))
streams.start()
"""

from topicflow.config import KafkaUrl, StreamsConfig
from topicflow.dsl import (
    Branched,
    BranchedKStream,
    Consumed,
    KStream,
    Named,
    Produced,
    Repartitioned,
    StreamsBuilder,
)
from topicflow.errors import (
    BrokerUnavailable,
    ConfigError,
    MissingSourceTopics,
    StreamsException,
    TopicflowError,
    TopologyError,
)
from topicflow.processor import (
    STREAM_TIME,
    WALL_CLOCK_TIME,
    Processor,
    ProcessorContext,
    PunctuationType,
    Record,
)
from topicflow.runtime.kafka_streams import KafkaStreams, State
from topicflow.serdes import Serde, Serdes
from topicflow.topology.topology import Topology

__all__ = [
    "STREAM_TIME",
    "WALL_CLOCK_TIME",
    "Branched",
    "BranchedKStream",
    "BrokerUnavailable",
    "ConfigError",
    "Consumed",
    "KStream",
    "KafkaStreams",
    "KafkaUrl",
    "MissingSourceTopics",
    "Named",
    "Processor",
    "ProcessorContext",
    "Produced",
    "PunctuationType",
    "Record",
    "Repartitioned",
    "Serde",
    "Serdes",
    "State",
    "StreamsBuilder",
    "StreamsConfig",
    "StreamsException",
    "TopicflowError",
    "Topology",
    "TopologyError",
]
