"""StreamsConfig: one config object, with Kafka Streams' names in snake_case.

Its fields and their checks, the configs of the clients derived from it, and
its construction from Kafka Streams' properties or Heroku's environment (the
parsing is in `properties.py` and `heroku.py`). See `topicflow.config`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from topicflow.config.heroku import KafkaEnv
from topicflow.config.properties import (
    BOOLEANS,
    ENV_INT_SETTINGS,
    JAVA_ALIASES,
    parse_int,
    settings_from_env,
)
from topicflow.errors import ConfigError, SerializationError
from topicflow.exception_handlers import HandlerSetting, is_handler_setting
from topicflow.serdes import Serde, Serdes

__all__ = [
    "AssignmentStrategy",
    "OffsetReset",
    "ProcessingGuarantee",
    "StreamsConfig",
    "TimestampExtractor",
    "redact",
]

ProcessingGuarantee = Literal["at_least_once", "exactly_once_v2"]
OffsetReset = Literal["earliest", "latest"]
AssignmentStrategy = Literal["range", "cooperative-sticky"]

# A timestamp extractor gets the record's own timestamp, key, value and the
# partition's current stream time, and returns the event time in epoch ms
# (Kafka Streams' `TimestampExtractor.extract(record, partitionTime)`).
TimestampExtractor = Callable[[int, Any, Any, int], int]


@dataclass(frozen=True)
class StreamsConfig:
    """Configuration of a `KafkaStreams` application.

    >>> StreamsConfig(application_id="text-processor-app", bootstrap_servers="localhost:9092")
    """

    application_id: str
    # None: the embedded in-process broker.
    bootstrap_servers: str | None = None
    num_stream_threads: int = 1
    # Kafka Streams' num.standby.replicas: warm copies of each stateful task on
    # this many other members (other machines first), kept up to date from the
    # changelog, so a task that fails over restores only the last moments.
    num_standby_replicas: int = 0
    commit_interval_ms: int = 30_000
    processing_guarantee: ProcessingGuarantee = "at_least_once"
    # At-least-once with exact aggregates: replays after a crash update no
    # aggregate twice (origin headers on outputs, flush stamps on changelogs;
    # see topicflow/runtime/replay.py). Needs no transactions, so it works on
    # Heroku's plans. Off under exactly_once_v2, which does this with transactions.
    idempotent_state: bool = False
    state_dir: str = field(default_factory=lambda: os.path.join(tempfile.gettempdir(), "topicflow"))
    default_key_serde: Serde[Any] = field(default_factory=Serdes.Bytes)
    default_value_serde: Serde[Any] = field(default_factory=Serdes.Bytes)
    # None: the record's own timestamp (Kafka Streams' default extractor).
    default_timestamp_extractor: TimestampExtractor | None = None
    # Kafka Streams' exception handlers (topicflow/exception_handlers.py): each
    # "log_and_continue", "log_and_fail" or handler(context, record, error).
    deserialization_exception_handler: HandlerSetting = "log_and_continue"
    processing_exception_handler: HandlerSetting = "log_and_fail"
    production_exception_handler: HandlerSetting = "log_and_fail"
    # KIP-1034: records the handlers skip go to this topic (it must exist).
    errors_dead_letter_queue_topic_name: str | None = None
    # Kafka Streams' task.timeout.ms: how long a worker keeps retrying while the
    # broker does not acknowledge its records (an outage) before it fails.
    task_timeout_ms: int = 300_000
    auto_offset_reset: OffsetReset = "earliest"
    # Kafka Streams' statestore.cache.max.bytes: per store, updates to a key
    # between commits are collapsed into one; 0 emits every update.
    statestore_cache_max_bytes: int = 10 * 1024 * 1024
    # Records per consume() call: Kafka Streams' max.poll.records default.
    max_poll_records: int = 1000
    poll_ms: int = 100
    # Kafka Streams' max.task.idle.ms (KIP-695): how long a task reading several
    # partitions (a join's, a merge's) waits for one of them that has no record
    # buffered, before it processes the others out of timestamp order. 0: wait
    # only while the consumer knows that partition has records on the broker not
    # fetched yet; -1: never wait; N: wait up to N ms more.
    max_task_idle_ms: int = 0
    # Kafka Streams' buffered.records.per.partition: a partition of such a task
    # is paused while more records than this wait in its queue.
    buffered_records_per_partition: int = 1000
    # Time to wait for the broker at start before failing with a clear error.
    startup_timeout_ms: int = 15_000
    session_timeout_ms: int = 45_000
    # Static membership (Kafka's group.instance.id): a member that restarts within
    # the session timeout gets its partitions back without a rebalance. Each
    # stream worker adds its number. On Heroku: TOPICFLOW_STATIC_MEMBERSHIP=true
    # takes the dyno's name (DYNO, e.g. aggregator_worker.1).
    group_instance_id: str | None = None
    # "range" (default): eager rebalances, and a member gets the same partition
    # number of every co-partitioned topic, which tasks reading several topics
    # need. "cooperative-sticky": incremental rebalances (only moved partitions
    # stop), for topologies whose sub-topologies each read one topic.
    partition_assignment_strategy: AssignmentStrategy = "range"
    client_id: str | None = None
    # Let the stream workers tune Python's cyclic garbage collector for streaming
    # (see runtime/gc_tuning.py). It is process-wide,
    # so off by default: a library must not retune its host's collector. A
    # process that only streams (the example's services) turns it on.
    tune_gc: bool = False
    # librdkafka settings: for every client, then per client kind.
    client_config: Mapping[str, Any] = field(default_factory=dict)
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    producer_config: Mapping[str, Any] = field(default_factory=dict)
    # How often, in wall-clock ms, a left or outer stream-stream join looks for
    # records whose window closed without a partner (a scan of its shared store;
    # Kafka Streams' internal emit interval for outer joins). None: 1000 ms, and
    # 0 in the TopologyTestDriver, which Kafka Streams' test driver sets too.
    outer_join_emit_interval_ms: int | None = None

    def __post_init__(self) -> None:
        if not self.application_id or not isinstance(self.application_id, str):
            raise ConfigError("application_id is required: it names the consumer group")
        if not _LEGAL_ID.fullmatch(self.application_id):
            raise ConfigError(
                f"application_id {self.application_id!r} may contain only letters, digits, '.', "
                "'_' and '-': it is part of internal topic names"
            )
        _check_positive("num_stream_threads", self.num_stream_threads)
        if not isinstance(self.num_standby_replicas, int) or self.num_standby_replicas < 0:
            raise ConfigError(
                f"num_standby_replicas must be 0 or more, got {self.num_standby_replicas!r}"
            )
        _check_positive("commit_interval_ms", self.commit_interval_ms)
        _check_positive("max_poll_records", self.max_poll_records)
        _check_choice(
            "processing_guarantee", self.processing_guarantee, ("at_least_once", "exactly_once_v2")
        )
        for name in (
            "deserialization_exception_handler",
            "processing_exception_handler",
            "production_exception_handler",
        ):
            if not is_handler_setting(getattr(self, name)):
                raise ConfigError(
                    f"{name} must be log_and_continue, log_and_fail or a function "
                    f"(context, record, error) -> HandlerResponse; got {getattr(self, name)!r}"
                )
        dlq = self.errors_dead_letter_queue_topic_name
        if dlq is not None and (not isinstance(dlq, str) or not dlq.strip()):
            raise ConfigError(
                f"errors_dead_letter_queue_topic_name must be a topic name, got {dlq!r}"
            )
        _check_positive("task_timeout_ms", self.task_timeout_ms)
        if not isinstance(self.max_task_idle_ms, int) or self.max_task_idle_ms < -1:
            raise ConfigError(
                f"max_task_idle_ms must be -1 (never wait) or 0 or more, "
                f"got {self.max_task_idle_ms!r}"
            )
        _check_positive("buffered_records_per_partition", self.buffered_records_per_partition)
        _check_choice("auto_offset_reset", self.auto_offset_reset, ("earliest", "latest"))
        _check_choice(
            "partition_assignment_strategy",
            self.partition_assignment_strategy,
            ("range", "cooperative-sticky"),
        )

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_config"):
                value = redact(value)
            shown.append(f"{f.name}={value!r}")
        return f"StreamsConfig({', '.join(shown)})"

    # -- construction -----------------------------------------------------------------

    def with_overrides(self, **changes: Any) -> StreamsConfig:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def from_properties(properties: Mapping[str, Any]) -> StreamsConfig:
        """Build from Kafka Streams property names (`application.id`, `num.stream.threads`...).

        Names that are not Kafka Streams settings are passed to librdkafka.
        """
        known = {f.name for f in dataclasses.fields(StreamsConfig)}
        kwargs: dict[str, Any] = {}
        passthrough: dict[str, Any] = {}
        for name, value in properties.items():
            snake = name.replace(".", "_")
            snake = JAVA_ALIASES.get(snake, snake)
            if snake in known:
                kwargs[snake] = value
            else:
                passthrough[name] = value
        if passthrough:
            kwargs["client_config"] = {**kwargs.get("client_config", {}), **passthrough}
        for serde_key in ("default_key_serde", "default_value_serde"):
            if isinstance(kwargs.get(serde_key), str):
                try:
                    kwargs[serde_key] = Serdes.by_name(kwargs[serde_key])
                except SerializationError as error:
                    raise ConfigError(f"{serde_key.replace('_', '.')}: {error}") from None
        for int_key in ENV_INT_SETTINGS:
            if isinstance(kwargs.get(int_key), str):
                kwargs[int_key] = parse_int(int_key.replace("_", "."), kwargs[int_key])
        if "application_id" not in kwargs:
            raise ConfigError("application.id is required: it names the consumer group")
        return StreamsConfig(**kwargs)

    @staticmethod
    def from_env(
        application_name: str,
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> StreamsConfig:
        """A config from Heroku's variables; the application id is `{KAFKA_PREFIX}{name}`.

        `KAFKA_URL` unset means the embedded broker. With `kafka+ssl://`, the
        certificates come from `KAFKA_TRUSTED_CERT`, `KAFKA_CLIENT_CERT` and
        `KAFKA_CLIENT_CERT_KEY` and are passed to librdkafka in memory.

        Any numeric or text setting can be overridden by `TOPICFLOW_<NAME>`, e.g.
        `TOPICFLOW_COMMIT_INTERVAL_MS=1000` or `TOPICFLOW_NUM_STREAM_THREADS=2`:
        on Heroku, a config var changes it without a deploy.
        """
        environ = environ if environ is not None else os.environ
        kafka = KafkaEnv.read(environ)
        client_config = {**kafka.client_config(), **dict(settings.pop("client_config", {}))}
        settings.update(settings_from_env(environ))
        idempotent = environ.get("TOPICFLOW_IDEMPOTENT_STATE", "").strip().lower()
        if idempotent:
            if idempotent not in BOOLEANS:
                raise ConfigError(f"TOPICFLOW_IDEMPOTENT_STATE={idempotent!r}: use true or false")
            settings["idempotent_state"] = BOOLEANS[idempotent]
        if environ.get("TOPICFLOW_STATIC_MEMBERSHIP", "").strip().lower() in ("1", "true", "yes"):
            dyno = environ.get("DYNO", "").strip()
            if not dyno and "group_instance_id" not in settings:
                raise ConfigError(
                    "TOPICFLOW_STATIC_MEMBERSHIP needs a stable name per instance: DYNO (set "
                    "by Heroku) or TOPICFLOW_GROUP_INSTANCE_ID"
                )
            settings.setdefault("group_instance_id", dyno)
        return StreamsConfig(
            application_id=f"{kafka.prefix}{application_name}",
            bootstrap_servers=kafka.url.bootstrap_servers if kafka.url else None,
            client_config=client_config,
            **settings,
        )

    # -- derived client configs ---------------------------------------------------------

    def base_client_config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {}
        if self.bootstrap_servers:
            conf["bootstrap.servers"] = self.bootstrap_servers
        conf["client.id"] = self.client_id or self.application_id
        conf.update(self.client_config)
        return conf

    def consumer_client_config(self) -> dict[str, Any]:
        conf = self.base_client_config()
        conf.update(
            {
                "group.id": self.application_id,
                "enable.auto.commit": False,
                # Offsets are stored by the commit cycle, never by librdkafka behind our back.
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.auto_offset_reset,
                "session.timeout.ms": self.session_timeout_ms,
                # Never read records of aborted transactions (exactly-once upstream).
                "isolation.level": "read_committed",
                # See partition_assignment_strategy: range unless the user opts in.
                "partition.assignment.strategy": self.partition_assignment_strategy,
                # Prefetch enough to keep a batch ready, but bound it: librdkafka's
                # default of 64 MB of queued messages dominates a worker's memory.
                "fetch.wait.max.ms": 100,
                "queued.max.messages.kbytes": 16_384,
                # ... and so does its default of 100k queued messages per partition:
                # small records (a word) weigh about 400 bytes each in the queue,
                # whatever their size. 10k still keeps 10 batches ready per partition.
                "queued.min.messages": 10_000,
                # One fetch response is buffered whole: librdkafka's 50 MB default
                # cost the Aggregator 63 MB of RSS and no speed over 4 MB.
                "fetch.max.bytes": 4 * 1024 * 1024,
                # librdkafka >= 2.1 stops fetching for fetch.queue.backoff.ms (1 s by
                # default) once that queue is full: a worker that drains it faster
                # would then sit idle for most of a second, in step with the fill.
                "fetch.queue.backoff.ms": 20,
            }
        )
        conf.update(self.consumer_config)
        return conf

    def producer_client_config(self) -> dict[str, Any]:
        conf = self.base_client_config()
        conf.update(
            {
                # Kafka's Java partitioner, so keys land where Java Kafka Streams puts them.
                "partitioner": "murmur2_random",
                "acks": "all",
                # librdkafka's default, not Kafka Streams' 100 ms: under load batches
                # fill anyway, and records waiting 100 ms held 80k messages in memory.
                # With queued.min.messages above, peak RSS fell from 183 to 146 MB
                # (Aggregator), 125 to 91 (Text Processor), 125 to 73 (Anomaly
                # Detector), at the same speed or faster, and with less latency.
                "linger.ms": 5,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                # Only failed deliveries call back into Python: no per-record callback.
                "delivery.report.only.error": True,
            }
        )
        if self.idempotent_state:
            # Origins rely on it: a partition's records land in order, without gaps.
            conf["enable.idempotence"] = True
        if self.exactly_once:
            # Transactions imply idempotence. The timeout bounds how long a killed
            # instance's open transaction blocks read_committed readers (failover
            # time): short, as Kafka Streams' 10 s, but well above the commit interval.
            conf["enable.idempotence"] = True
            conf["transaction.timeout.ms"] = max(10_000, 5 * self.commit_interval_ms)
        else:
            # A record is retried (through a broker outage) as long as the worker
            # waits for it: task_timeout_ms, after which the worker fails. Under
            # transactions librdkafka bounds it by transaction.timeout.ms instead.
            conf["message.timeout.ms"] = self.task_timeout_ms
        conf.update(self.producer_config)
        return conf

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once_v2"

    @property
    def stamps_replays(self) -> bool:
        """Whether records carry origins and changelogs flush stamps (idempotent_state
        under at-least-once)."""
        return self.idempotent_state and not self.exactly_once


# Internal topic names are `{application_id}-...`: only Kafka's legal topic characters.
_LEGAL_ID = re.compile(r"[A-Za-z0-9._-]+")

# librdkafka settings whose values are secrets: never shown by repr() or in errors.
_SECRET_MARKERS = ("password", "secret", ".pem", "key", "token", "sasl.jaas")


def redact(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of librdkafka settings with secret values replaced by `***`."""
    return {
        name: "***" if any(marker in name.lower() for marker in _SECRET_MARKERS) else value
        for name, value in settings.items()
    }


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
