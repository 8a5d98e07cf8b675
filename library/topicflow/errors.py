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


class RetriableError(TopicflowError):
    """Not done yet, try again later: e.g. an external system is down.

    Raised by `Processor.flush()`: the stream worker then skips the commit,
    pauses its input and retries with backoff, so nothing is lost and nothing
    crash-loops.
    """


class HandlerFailed(StreamsException):
    """An exception handler answered FAIL: the stream worker stops, committing
    nothing after the record (its message names the record's topic, partition
    and offset)."""


class RefusedRecord:
    """One record an external system refused for its content (see RecordsRefused)."""

    __slots__ = ("error", "key", "timestamp", "value")

    def __init__(
        self,
        key: bytes | None,
        value: bytes | None,
        error: Exception,
        timestamp: int | None = None,
    ) -> None:
        # The record as the sink would have written it, serialized for the
        # dead-letter queue; `error` is the system's own error for it; the
        # dead letter's timestamp (None: the time of the commit that wrote it).
        self.key = key
        self.value = value
        self.error = error
        self.timestamp = timestamp


class RecordsRefused(TopicflowError):
    """Raised by a processor's commit-time flush after it wrote everything else:
    the external system refused these records for their content (a value too
    long, an index row too large, a bad encoding, a constraint), so retrying
    cannot help. The stream worker hands each one to the processing exception
    handler (CONTINUE: counted as a sink skip and dead-lettered; FAIL: the
    worker stops), then goes on with the commit."""

    def __init__(self, where: str, refused: list[RefusedRecord]) -> None:
        first = refused[0].error if refused else None
        super().__init__(
            f"{where} refused {len(refused)} record(s) for their content"
            + (f": {type(first).__name__}: {first}" if first is not None else "")
        )
        self.where = where
        self.refused = refused
