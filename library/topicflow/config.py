"""StreamsConfig: one config object, with Kafka Streams' names in snake_case.

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
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from topicflow.errors import ConfigError, SerializationError
from topicflow.exception_handlers import HandlerSetting, is_handler_setting
from topicflow.serdes import Serde, Serdes

ProcessingGuarantee = Literal["at_least_once", "exactly_once_v2"]
OffsetReset = Literal["earliest", "latest"]
AssignmentStrategy = Literal["range", "cooperative-sticky"]

# A timestamp extractor gets the record's own timestamp, key, value and the
# partition's current stream time, and returns the event time in epoch ms
# (Kafka Streams' `TimestampExtractor.extract(record, partitionTime)`).
TimestampExtractor = Callable[[int, Any, Any, int], int]


@dataclass(frozen=True, slots=True)
class KafkaUrl:
    """A parsed `KAFKA_URL`: bootstrap servers and whether they speak SSL."""

    bootstrap_servers: str
    ssl: bool

    @staticmethod
    def parse(url: str, variable: str = "KAFKA_URL") -> KafkaUrl:
        """Parse Heroku's form: comma-separated `kafka://host:port` or `kafka+ssl://host:port`."""
        hosts: list[str] = []
        schemes: set[str] = set()
        for part in (p.strip() for p in url.split(",")):
            if not part:
                continue
            split = urlsplit(part)
            if split.scheme not in ("kafka", "kafka+ssl"):
                shown = split.scheme or part.split(":", 1)[0]
                raise ConfigError(
                    f"{variable}: unknown scheme {shown!r}; use kafka://host:port "
                    "or kafka+ssl://host:port, comma-separated"
                )
            try:
                port = split.port
            except ValueError:
                port = None
            if not split.hostname or port is None:
                raise ConfigError(
                    f"{variable}: {split.scheme}:// entry without host:port; "
                    "expected e.g. kafka+ssl://broker1.example.com:9096"
                )
            schemes.add(split.scheme)
            hosts.append(f"{split.hostname}:{port}")
        if not hosts:
            raise ConfigError(f"{variable} is empty; unset it to use the embedded broker")
        if len(schemes) > 1:
            raise ConfigError(f"{variable} mixes kafka:// and kafka+ssl:// entries; use one scheme")
        return KafkaUrl(",".join(hosts), ssl=schemes == {"kafka+ssl"})


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
    # (see runtime/stream_worker.py: tune_garbage_collector). It is process-wide,
    # so off by default: a library must not retune its host's collector. A
    # process that only streams (the example's services) turns it on.
    tune_gc: bool = False
    # librdkafka settings: for every client, then per client kind.
    client_config: Mapping[str, Any] = field(default_factory=dict)
    consumer_config: Mapping[str, Any] = field(default_factory=dict)
    producer_config: Mapping[str, Any] = field(default_factory=dict)

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
            snake = _JAVA_ALIASES.get(snake, snake)
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
        for int_key in _ENV_INT_SETTINGS:
            if isinstance(kwargs.get(int_key), str):
                kwargs[int_key] = _parse_int(int_key.replace("_", "."), kwargs[int_key])
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
        settings.update(_settings_from_env(environ))
        idempotent = environ.get("TOPICFLOW_IDEMPOTENT_STATE", "").strip().lower()
        if idempotent:
            if idempotent not in _BOOLEANS:
                raise ConfigError(f"TOPICFLOW_IDEMPOTENT_STATE={idempotent!r}: use true or false")
            settings["idempotent_state"] = _BOOLEANS[idempotent]
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


@dataclass(frozen=True)
class KafkaEnv:
    """What Heroku's Kafka add-on puts in the environment."""

    url: KafkaUrl | None
    prefix: str
    trusted_cert: str | None
    client_cert: str | None
    client_cert_key: str | None

    @staticmethod
    def read(environ: Mapping[str, str], base: str | None = None) -> KafkaEnv:
        """The add-on's variables under `base` (`KAFKA`: `KAFKA_URL`...), or under the
        attachment the environment names (see `attachment_name`)."""
        base = base or attachment_name(environ)
        raw_url = environ.get(f"{base}_URL", "").strip()
        url = KafkaUrl.parse(raw_url, f"{base}_URL") if raw_url else None
        return KafkaEnv(
            url=url,
            prefix=environ.get(f"{base}_PREFIX", ""),
            trusted_cert=environ.get(f"{base}_TRUSTED_CERT") or None,
            client_cert=environ.get(f"{base}_CLIENT_CERT") or None,
            client_cert_key=environ.get(f"{base}_CLIENT_CERT_KEY") or None,
        )

    def client_config(self) -> dict[str, Any]:
        if self.url is None or not self.url.ssl:
            return {}
        conf: dict[str, Any] = {
            "security.protocol": "ssl",
            # Heroku's broker certificates carry no host names: verify the chain only.
            "ssl.endpoint.identification.algorithm": "none",
        }
        if self.trusted_cert:
            conf["ssl.ca.pem"] = self.trusted_cert
        if self.client_cert:
            conf["ssl.certificate.pem"] = self.client_cert
        if self.client_cert_key:
            conf["ssl.key.pem"] = self.client_cert_key
        return conf


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


# Settings that `TOPICFLOW_<NAME>` environment variables may set.
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

_ENV_INT_SETTINGS = (
    "num_stream_threads",
    "num_standby_replicas",
    "statestore_cache_max_bytes",
    "commit_interval_ms",
    "max_poll_records",
    "poll_ms",
    "startup_timeout_ms",
    "session_timeout_ms",
    "task_timeout_ms",
)
_ENV_STR_SETTINGS = (
    "state_dir",
    "partition_assignment_strategy",
    "group_instance_id",
    "auto_offset_reset",
    "processing_guarantee",
    "deserialization_exception_handler",
    "processing_exception_handler",
    "production_exception_handler",
    "errors_dead_letter_queue_topic_name",
    "client_id",
)


def _settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name in _ENV_INT_SETTINGS:
        raw = environ.get(f"TOPICFLOW_{name.upper()}")
        if raw:
            settings[name] = _parse_int(f"TOPICFLOW_{name.upper()}", raw)
    for name in _ENV_STR_SETTINGS:
        raw = environ.get(f"TOPICFLOW_{name.upper()}")
        if raw:
            settings[name] = raw
    return settings


_JAVA_ALIASES = {
    "default_key_serde_class": "default_key_serde",
    "default_value_serde_class": "default_value_serde",
    "max_poll_records": "max_poll_records",
    # Kafka Streams' names before 4.0.
    "default_deserialization_exception_handler": "deserialization_exception_handler",
    "default_production_exception_handler": "production_exception_handler",
}


# Heroku names an add-on's variables after its attachment: `KAFKA_URL` for the
# default one, `HEROKU_KAFKA_GRAY_URL` for an attachment named HEROKU_KAFKA_GRAY.
ATTACHMENT_VARIABLE = "TOPICFLOW_KAFKA_ATTACHMENT"


def attachment_name(environ: Mapping[str, str]) -> str:
    """Which attachment's variables to read, in this order:

    1. `TOPICFLOW_KAFKA_ATTACHMENT`, e.g. `HEROKU_KAFKA_GRAY` (its `_URL` must be set);
    2. the original Java example's scheme: `HEROKU_KAFKA` plus `ADDON_SUFFIX`, when
       `ADDON_SUFFIX` is set;
    3. Heroku's default attachment, `KAFKA`, when `KAFKA_URL` is set;
    4. `HEROKU_KAFKA`, when only `HEROKU_KAFKA_URL` is set.
    With none of them, `KAFKA` (unset: the embedded broker).
    """
    explicit = environ.get(ATTACHMENT_VARIABLE, "").strip()
    if explicit:
        if not environ.get(f"{explicit}_URL", "").strip():
            raise ConfigError(
                f"{ATTACHMENT_VARIABLE}={explicit} but {explicit}_URL is not set; "
                "check the attachment's name with `heroku addons`"
            )
        return explicit
    suffix = environ.get("ADDON_SUFFIX", "").strip()
    if suffix:
        base = f"HEROKU_KAFKA{suffix}"
        if not environ.get(f"{base}_URL", "").strip():
            raise ConfigError(f"ADDON_SUFFIX={suffix} but {base}_URL is not set")
        return base
    if environ.get("KAFKA_URL", "").strip():
        return "KAFKA"
    if environ.get("HEROKU_KAFKA_URL", "").strip():
        return "HEROKU_KAFKA"
    return "KAFKA"


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
