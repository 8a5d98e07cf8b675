"""Exceptions. Each message is one line: what is wrong and what to do about it.

Messages never carry secrets: certificates, keys and passwords are referred to
by the name of the setting that holds them, never by value.
"""

from __future__ import annotations


class TopicflowError(Exception):
    """Base of every error topicflow raises on purpose."""


class ConfigError(TopicflowError):
    """A setting is missing, malformed or contradictory."""


class BrokerUnavailable(TopicflowError):
    """The broker cannot be reached, or refused the client."""


class MissingSourceTopics(TopicflowError):
    """Topics the topology reads from or writes to do not exist."""


class TopologyError(TopicflowError):
    """The topology is malformed (a dangling node, a duplicate name...)."""


class StreamsException(TopicflowError):
    """Processing failed and the stream worker cannot go on."""


class SerializationError(TopicflowError):
    """A key or value could not be serialized or deserialized."""


class DevEnvError(TopicflowError):
    """The development services (`topicflow dev`) could not be started or stopped."""


class RetriableError(TopicflowError):
    """Not done yet, try again later: e.g. an external system is down.

    Raised by `Processor.flush()`: the stream worker then skips the commit,
    pauses its input and retries with backoff, so nothing is lost and nothing
    crash-loops.
    """
