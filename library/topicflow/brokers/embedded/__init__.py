"""The embedded in-process broker: Kafka's model (topics, partitions, offsets,
consumer groups) in memory, for development, tests and demos without Kafka."""

from topicflow.brokers.embedded.broker import EmbeddedAdmin, EmbeddedBroker, default_broker
from topicflow.brokers.embedded.consumer import EmbeddedConsumer
from topicflow.brokers.embedded.message import EmbeddedMessage
from topicflow.brokers.embedded.producer import EmbeddedProducer

__all__ = [
    "EmbeddedAdmin",
    "EmbeddedBroker",
    "EmbeddedConsumer",
    "EmbeddedMessage",
    "EmbeddedProducer",
    "default_broker",
]
