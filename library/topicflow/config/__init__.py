"""Configuration: `StreamsConfig`, with Kafka Streams' names in snake_case.

Defaults are Kafka Streams' own (`auto_offset_reset="earliest"`,
`commit_interval_ms=30000`, one stream thread...), so a Kafka Streams user is
never surprised; each service sets what it needs on top. Two deliberate
exceptions, so that bad input never crash-loops a service: a record that cannot
be deserialized, or has a negative timestamp, is logged, counted and skipped
(Kafka Streams' defaults fail), unless `deserialization_exception_handler`
is `log_and_fail` (see topicflow/exception_handlers.py). Settings that are not
Kafka Streams' go to librdkafka untouched through `client_config` (all
clients), `consumer_config` and `producer_config`.

`StreamsConfig.from_env()` reads Heroku's variables: `KAFKA_URL` (unset means
the embedded broker), `KAFKA_PREFIX`, and the SSL certificates.

The modules: `streams_config` (StreamsConfig, its checks and the client
configs derived from it), `heroku` (KafkaUrl, KafkaEnv: what Heroku's Kafka
add-on puts in the environment) and `properties` (settings given as text:
Kafka Streams' property names, `TOPICFLOW_<NAME>` variables). Import from here.
"""

from topicflow.config.heroku import ATTACHMENT_VARIABLE, KafkaEnv, KafkaUrl, attachment_name
from topicflow.config.streams_config import (
    AssignmentStrategy,
    OffsetReset,
    ProcessingGuarantee,
    StreamsConfig,
    TimestampExtractor,
    redact,
)

__all__ = [
    "ATTACHMENT_VARIABLE",
    "AssignmentStrategy",
    "KafkaEnv",
    "KafkaUrl",
    "OffsetReset",
    "ProcessingGuarantee",
    "StreamsConfig",
    "TimestampExtractor",
    "attachment_name",
    "redact",
]
