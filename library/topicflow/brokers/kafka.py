"""Apache Kafka through confluent-kafka (librdkafka).

Consumers and producers are librdkafka's own objects, handed to the runtime
as they are: nothing of ours sits between a consumed message and its task.
librdkafka's log lines go to Python logging (`topicflow.librdkafka`) instead
of stderr. While the brokers are unreachable every client logs each failed
attempt (25 or more lines a second per process): those lines and their twins
in the error callback are held to one line per `CONNECTION_LOG_EVERY_S` for
the whole process, carrying how many were held back.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import ConsumerGroupState, KafkaError, KafkaException
from confluent_kafka import Producer as KafkaProducer
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from topicflow.brokers.base import Admin, Consumer, GroupMember, Producer, TopicSpec
from topicflow.errors import BrokerUnavailable

log = logging.getLogger("topicflow.librdkafka")

# While the brokers are down each client of a process (consumer, producer,
# admin, restore consumer) retries every 50 ms or so and reports each failure
# twice: a log line and an error callback. One line per this many seconds per
# process says the broker is down, how, and how hard the clients are trying.
CONNECTION_LOG_EVERY_S = 30.0

# Other non-fatal client errors: one line per this many seconds per broker factory.
ERROR_LOG_EVERY_S = 10.0

# librdkafka's facilities that are only about connections: FAIL is a connection
# torn down or not made (refused, reset, timed out, name not resolved, TLS or
# SASL failure), REQTMOUT requests timed out on one.
_CONNECTION_FACILITIES = frozenset({"FAIL", "REQTMOUT"})
# The same failures as other facilities' lines word them (METADATA, COMMITFAIL, ERROR...).
_CONNECTION_WORDS = (
    "Connection refused",
    "Connect to ",
    "Disconnected",
    "brokers are down",
    "Broker transport failure",
    "Failed to resolve",
    "Connection setup timed out",
    # A broker back from an outage: one line per partition and client.
    "not found in cache",
)
# The error callback's codes for them (librdkafka raises one with each FAIL line).
_CONNECTION_ERRORS = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._SSL,
        KafkaError._AUTHENTICATION,
    }
)
# What the line shown needs not: librdkafka's thread, and how long a failed
# connection attempt took (how long a connection lasted, "in state UP", stays).
_LIBRDKAFKA_DETAILS = re.compile(r"^\[thrd:[^\]]*\]: | \(after \d+ms in state CONNECT[^)]*\)$")


class _ConnectionTrouble:
    """One line per `CONNECTION_LOG_EVERY_S` for the process; counts the others.

    Called from every thread that polls a client (librdkafka serves log lines and
    errors in `poll()`), hence the lock. A line says how many similar messages were
    held back since the previous one; nothing is logged when the connection comes
    back (librdkafka says nothing then), so the count of an outage's last seconds
    rides on the next outage's first line.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_line: float | None = None
        self._held_back = 0

    def report(self, level: int, text: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_line
            if last is not None and now - last < CONNECTION_LOG_EVERY_S:
                self._held_back += 1
                return
            self._last_line = now
            held_back, self._held_back = self._held_back, 0
        text = _LIBRDKAFKA_DETAILS.sub("", text)
        if last is None or not held_back:
            log.log(level, "Kafka unreachable: %s", text)
        else:
            log.log(
                level,
                "Kafka unreachable: %s (%d similar messages in the last %s)",
                text,
                held_back,
                _duration(now - last),
            )


_connection_trouble = _ConnectionTrouble()


def _new_process() -> None:
    # A forked worker has its own clients and its own budget (and no lock held by
    # a thread of its parent).
    global _connection_trouble
    _connection_trouble = _ConnectionTrouble()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_process)


class _LibrdkafkaLog:
    """What confluent-kafka gets as `logger`: connection trouble rate-limited, the rest as is.

    confluent-kafka calls `log(level, "%s [%s] %s", facility, client name, message)`
    with a `logging` level, in the thread that polls the client.
    """

    def log(self, level: int, msg: str, *args: Any) -> None:
        # INFO too: librdkafka says "Disconnected" at INFO, once per connection.
        if level >= logging.INFO and len(args) == 3 and _about_connection(args[0], args[2]):
            _connection_trouble.report(level, args[2])
        else:
            log.log(level, msg, *args)


def _about_connection(facility: object, text: object) -> bool:
    if facility in _CONNECTION_FACILITIES:
        return True
    return isinstance(text, str) and any(words in text for words in _CONNECTION_WORDS)


_librdkafka_log = _LibrdkafkaLog()


class _ErrorReporter:
    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, error: KafkaError) -> None:
        if error.fatal():
            log.error("fatal Kafka client error: %s", error.str())
            return
        if error.code() in _CONNECTION_ERRORS:
            _connection_trouble.report(logging.ERROR, error.str())
            return
        now = time.monotonic()
        if now - self._last >= ERROR_LOG_EVERY_S:
            self._last = now
            log.warning("Kafka client: %s", error.str())


class KafkaBroker:
    """Factory of confluent-kafka clients for one cluster."""

    name = "kafka"

    def __init__(self, client_config: dict[str, Any]) -> None:
        if not client_config.get("bootstrap.servers"):
            raise BrokerUnavailable("no bootstrap servers configured: set KAFKA_URL")
        self._base = dict(client_config)
        self._error_reporter = _ErrorReporter()

    @property
    def bootstrap_servers(self) -> str:
        return str(self._base["bootstrap.servers"])

    def _with_callbacks(self, config: dict[str, Any]) -> dict[str, Any]:
        config = dict(config)
        config.setdefault("logger", _librdkafka_log)
        config.setdefault("error_cb", self._error_reporter)
        return config

    def consumer(self, client_config: dict[str, Any]) -> Consumer:
        return KafkaConsumer(self._with_callbacks(client_config))  # type: ignore[return-value]

    def producer(self, client_config: dict[str, Any]) -> Producer:
        return KafkaProducer(self._with_callbacks(client_config))  # type: ignore[return-value]

    def admin(self) -> Admin:
        return KafkaAdmin(AdminClient(self._with_callbacks(self._admin_config())))

    def _admin_config(self) -> dict[str, Any]:
        # The admin client takes only the connection settings, not consumer or producer ones.
        return {k: v for k, v in self._base.items() if not k.startswith(("group.", "enable."))}

    def check_reachable(self, timeout: float) -> None:
        """Connect once; raise BrokerUnavailable with the cause in one line.

        librdkafka retries a refused TLS handshake for ever and reports the cause
        only to the error callback: listen to it, so that a bad certificate fails
        in a second with what to fix rather than after the timeout with "transport
        failure".
        """
        errors: list[KafkaError] = []
        listeners: dict[str, Any] = {"logger": _silent, "error_cb": errors.append}
        try:
            admin = AdminClient({**self._admin_config(), **listeners})
        except KafkaException as error:
            raise BrokerUnavailable(_client_setup_error(error)) from None
        deadline = time.monotonic() + timeout
        reason = "no answer"
        while True:
            try:
                admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
                return
            except KafkaException as error:
                reason = error.args[0].str() if error.args else str(error)
            admin.poll(0)  # the error callback is served here, not by list_topics
            refused = _refusal(errors)
            if refused is not None:
                raise BrokerUnavailable(f"Kafka at {self.bootstrap_servers}: {refused}")
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"cannot reach Kafka at {self.bootstrap_servers} within {timeout:.0f} s "
                    f"({_short(reason)}); check KAFKA_URL and that the broker is up"
                )


def _refusal(errors: list[KafkaError]) -> str | None:
    """What to fix, when the broker answered but refused the connection (TLS, auth)."""
    for error in errors:
        text = error.str()
        if "bad certificate" in text or "certificate required" in text:
            return (
                "the broker refused the client certificate (bad certificate); check "
                "KAFKA_CLIENT_CERT and KAFKA_CLIENT_CERT_KEY"
            )
        if error.code() == KafkaError._SSL or "certificate verify failed" in text:
            return (
                "TLS handshake failed: the broker's certificate could not be verified; "
                "check KAFKA_TRUSTED_CERT holds the CA that signed it (host names are not "
                "checked, as Heroku's certificates carry none)"
            )
        if error.code() == KafkaError._AUTHENTICATION:
            return f"authentication failed ({_short(text)}); check the client credentials"
    return None


def _client_setup_error(error: KafkaException) -> str:
    """librdkafka refused the settings (e.g. a PEM that does not parse); no values shown."""
    text = error.args[0].str() if error.args else str(error)
    if "ssl.key" in text or "private key" in text:
        return "KAFKA_CLIENT_CERT_KEY is not a usable PEM private key for KAFKA_CLIENT_CERT"
    if "ssl.certificate" in text:
        return "KAFKA_CLIENT_CERT is not a usable PEM certificate"
    if "ssl.ca" in text:
        return "KAFKA_TRUSTED_CERT is not a usable PEM CA certificate"
    return f"invalid Kafka client settings: {_short(text)}"


class KafkaAdmin:
    def __init__(self, client: AdminClient) -> None:
        self._client = client

    def partition_counts(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        metadata = self._client.list_topics(timeout=timeout)
        counts = {}
        for name in topics:
            topic = metadata.topics.get(name)
            if topic is not None and topic.error is None:
                counts[name] = len(topic.partitions)
        return counts

    def create_topics(self, specs: Sequence[TopicSpec], timeout: float) -> None:
        if not specs:
            return
        futures = self._client.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=spec.replication_factor,
                    config=dict(spec.config or {}),
                )
                for spec in specs
            ],
            request_timeout=timeout,
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
            except KafkaException as error:
                kafka_error = error.args[0]
                if kafka_error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise BrokerUnavailable(
                    f"cannot create topic {name!r}: {kafka_error.str()}"
                ) from None
        # Topic creation is asynchronous on the brokers: wait until metadata shows them.
        deadline = time.monotonic() + timeout
        wanted = [s.name for s in specs]
        while time.monotonic() < deadline:
            if len(self.partition_counts(wanted, timeout)) == len(wanted):
                return
            time.sleep(0.1)

    def delete_topics(self, topics: Sequence[str], timeout: float) -> None:
        if not topics:
            return
        for future in self._client.delete_topics(list(topics), request_timeout=timeout).values():
            try:
                future.result(timeout)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise

    def max_message_bytes(self, topics: Sequence[str], timeout: float) -> dict[str, int]:
        """Each topic's max.message.bytes (the largest record batch the broker takes);
        topics whose configs cannot be read (missing, not authorized) are absent."""
        if not topics:
            return {}
        futures = self._client.describe_configs(
            [ConfigResource("topic", name) for name in topics], request_timeout=timeout
        )
        limits: dict[str, int] = {}
        for resource, future in futures.items():
            try:
                entry = future.result(timeout).get("max.message.bytes")
            except KafkaException:
                continue
            if entry is not None and entry.value:
                limits[resource.name] = int(entry.value)
        return limits

    def group_members(self, group_id: str, timeout: float) -> list[GroupMember] | None:
        future = self._client.describe_consumer_groups([group_id], request_timeout=timeout)[
            group_id
        ]
        description = future.result(timeout)
        if description.state != ConsumerGroupState.STABLE:
            return None
        return [
            GroupMember(
                member.member_id,
                member.host,
                tuple(
                    (tp.topic, tp.partition)
                    for tp in (member.assignment.topic_partitions if member.assignment else [])
                ),
            )
            for member in description.members
        ]


class _Silent(logging.Logger):
    def __init__(self) -> None:
        super().__init__("topicflow.librdkafka.silent", level=logging.CRITICAL + 1)


_silent = _Silent()


def _short(reason: str) -> str:
    return reason.split(": ", 1)[-1] if len(reason) > 120 else reason


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"
