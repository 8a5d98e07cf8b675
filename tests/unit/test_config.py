"""StreamsConfig, KafkaUrl and Heroku's environment: parsing, defaults, checks, client configs."""

from __future__ import annotations

from typing import Any

import pytest

from topicflow import ConfigError, KafkaUrl, Serdes, StreamsConfig
from topicflow.config import KafkaEnv

FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIFAKECAFAKECAFAKECA0001\n-----END CERTIFICATE-----\n"
FAKE_CERT = "-----BEGIN CERTIFICATE-----\nMIIFAKECLIENTCERT0002\n-----END CERTIFICATE-----\n"
FAKE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIFAKEPRIVATEKEY0003\n-----END RSA PRIVATE KEY-----\n"
SECRET_MARKERS = ("MIIFAKECAFAKECAFAKECA0001", "MIIFAKECLIENTCERT0002", "MIIFAKEPRIVATEKEY0003")

SSL_URL = "kafka+ssl://b1.example.com:9096,kafka+ssl://b2.example.com:9096"


def ssl_environ(**extra: str) -> dict[str, str]:
    return {
        "KAFKA_URL": SSL_URL,
        "KAFKA_TRUSTED_CERT": FAKE_CA,
        "KAFKA_CLIENT_CERT": FAKE_CERT,
        "KAFKA_CLIENT_CERT_KEY": FAKE_KEY,
        **extra,
    }


def config_error(callable_: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        callable_(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    return message


def assert_no_secret(message: str) -> None:
    for marker in SECRET_MARKERS:
        assert marker not in message
    assert "BEGIN" not in message


# -- KafkaUrl ---------------------------------------------------------------------------------


def test_parse_single_plaintext_url() -> None:
    url = KafkaUrl.parse("kafka://localhost:9092")
    assert url == KafkaUrl("localhost:9092", ssl=False)


def test_parse_single_ssl_url() -> None:
    url = KafkaUrl.parse("kafka+ssl://broker.example.com:9096")
    assert url.bootstrap_servers == "broker.example.com:9096"
    assert url.ssl is True


def test_parse_comma_separated_ssl_urls_keeps_order() -> None:
    url = KafkaUrl.parse(
        "kafka+ssl://ec2-1-2-3-4.compute-1.amazonaws.com:9096,"
        "kafka+ssl://ec2-5-6-7-8.compute-1.amazonaws.com:9096,"
        "kafka+ssl://ec2-9-9-9-9.compute-1.amazonaws.com:9096"
    )
    assert url.bootstrap_servers == (
        "ec2-1-2-3-4.compute-1.amazonaws.com:9096,"
        "ec2-5-6-7-8.compute-1.amazonaws.com:9096,"
        "ec2-9-9-9-9.compute-1.amazonaws.com:9096"
    )
    assert url.ssl is True


def test_parse_tolerates_spaces_and_trailing_comma() -> None:
    url = KafkaUrl.parse(" kafka://a:1 , kafka://b:2, ")
    assert url == KafkaUrl("a:1,b:2", ssl=False)


def test_unknown_scheme_names_variable_and_fix() -> None:
    message = config_error(KafkaUrl.parse, "http://broker:9092")
    assert message.startswith("KAFKA_URL")
    assert "'http'" in message
    assert "kafka://host:port" in message
    assert "kafka+ssl://host:port" in message


def test_error_names_the_variable_it_was_given() -> None:
    message = config_error(KafkaUrl.parse, "tcp://broker:9092", "OTHER_KAFKA_URL")
    assert message.startswith("OTHER_KAFKA_URL")


def test_plain_host_port_without_scheme_is_rejected() -> None:
    message = config_error(KafkaUrl.parse, "localhost:9092")
    assert "KAFKA_URL" in message
    assert "kafka://" in message


@pytest.mark.parametrize("url", ["kafka://broker", "kafka+ssl://broker:", "kafka://broker:port"])
def test_missing_or_bad_port_is_rejected(url: str) -> None:
    message = config_error(KafkaUrl.parse, url)
    assert "KAFKA_URL" in message
    assert "host:port" in message


def test_missing_host_is_rejected() -> None:
    config_error(KafkaUrl.parse, "kafka://:9092")


def test_mixed_schemes_are_rejected() -> None:
    message = config_error(KafkaUrl.parse, "kafka://a:9092,kafka+ssl://b:9096")
    assert "KAFKA_URL" in message
    assert "mixes" in message


@pytest.mark.parametrize("url", ["", " ", ",", " , "])
def test_empty_url_is_rejected(url: str) -> None:
    message = config_error(KafkaUrl.parse, url)
    assert "KAFKA_URL" in message
    assert "empty" in message


# -- StreamsConfig: defaults and validation --------------------------------------------------


def test_defaults_match_kafka_streams() -> None:
    config = StreamsConfig(application_id="app")
    assert config.auto_offset_reset == "earliest"
    assert config.commit_interval_ms == 30_000
    assert config.num_stream_threads == 1
    assert config.processing_guarantee == "at_least_once"
    assert config.max_poll_records == 1000
    assert config.bootstrap_servers is None
    assert config.default_key_serde is Serdes.Bytes()
    assert config.default_value_serde is Serdes.Bytes()


@pytest.mark.parametrize("threads", [0, -1])
def test_num_stream_threads_must_be_positive(threads: int) -> None:
    message = config_error(StreamsConfig, application_id="app", num_stream_threads=threads)
    assert "num_stream_threads" in message


def test_commit_interval_must_be_positive() -> None:
    message = config_error(StreamsConfig, application_id="app", commit_interval_ms=0)
    assert "commit_interval_ms" in message


def test_unknown_processing_guarantee_is_rejected() -> None:
    message = config_error(StreamsConfig, application_id="app", processing_guarantee="exactly_once")
    assert "processing_guarantee" in message
    assert "at_least_once" in message


def test_exactly_once_v2_sets_up_transactional_clients() -> None:
    config = StreamsConfig(application_id="app", processing_guarantee="exactly_once_v2")
    assert config.exactly_once
    producer = config.producer_client_config()
    assert producer["enable.idempotence"] is True
    assert producer["transaction.timeout.ms"] >= 10_000
    assert config.consumer_client_config()["isolation.level"] == "read_committed"


def test_exactly_once_v2_on_the_embedded_broker_fails_at_start_with_the_alternative() -> None:
    from topicflow import KafkaStreams, StreamsBuilder
    from topicflow.brokers.embedded import EmbeddedBroker

    builder = StreamsBuilder()
    builder.stream("in").to("out")
    config = StreamsConfig(application_id="app", processing_guarantee="exactly_once_v2")
    streams = KafkaStreams(builder.build(), config, broker=EmbeddedBroker())
    with pytest.raises(ConfigError) as info:
        streams.start()
    assert "at_least_once" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("auto_offset_reset", "smallest"),
        ("deserialization_exception_handler", "ignore"),
        ("processing_exception_handler", "retry"),
    ],
)
def test_choice_settings_are_checked(field: str, value: str) -> None:
    message = config_error(StreamsConfig, application_id="app", **{field: value})
    assert field in message


def test_empty_application_id_is_rejected() -> None:
    message = config_error(StreamsConfig, application_id="")
    assert "application_id" in message


@pytest.mark.parametrize("application_id", ["team/app", "my app", "a,b", "a\\b"])
def test_application_id_with_forbidden_characters_is_rejected(application_id: str) -> None:
    message = config_error(StreamsConfig, application_id=application_id)
    assert "application_id" in message


@pytest.mark.parametrize("application_id", ["app", "text-processor-app", "p.app_1", "A-b.C_9"])
def test_valid_application_ids_are_accepted(application_id: str) -> None:
    assert StreamsConfig(application_id=application_id).application_id == application_id


@pytest.mark.parametrize("application_id", ["orders:v1", "app#2", "appé"])
def test_application_id_outside_the_documented_alphabet_is_rejected(application_id: str) -> None:
    with pytest.raises(ConfigError):
        StreamsConfig(application_id=application_id)


def test_with_overrides_validates_again() -> None:
    config = StreamsConfig(application_id="app")
    assert config.with_overrides(num_stream_threads=4).num_stream_threads == 4
    config_error(config.with_overrides, num_stream_threads=0)


# -- from_env ------------------------------------------------------------------------------------


def test_from_env_without_kafka_url_uses_the_embedded_broker() -> None:
    config = StreamsConfig.from_env("text-processor-app", environ={})
    assert config.application_id == "text-processor-app"
    assert config.bootstrap_servers is None
    assert dict(config.client_config) == {}
    assert "bootstrap.servers" not in config.consumer_client_config()


def test_from_env_puts_kafka_prefix_in_front_of_application_id() -> None:
    config = StreamsConfig.from_env("text-processor-app", environ={"KAFKA_PREFIX": "tenant-42."})
    assert config.application_id == "tenant-42.text-processor-app"
    assert config.consumer_client_config()["group.id"] == "tenant-42.text-processor-app"


def test_from_env_plaintext_url() -> None:
    config = StreamsConfig.from_env("app", environ={"KAFKA_URL": "kafka://localhost:9092"})
    assert config.bootstrap_servers == "localhost:9092"
    assert "security.protocol" not in config.base_client_config()


def test_from_env_ssl_passes_certificates_to_librdkafka_in_memory() -> None:
    config = StreamsConfig.from_env("app", environ=ssl_environ())
    assert config.bootstrap_servers == "b1.example.com:9096,b2.example.com:9096"
    conf = config.base_client_config()
    assert conf["bootstrap.servers"] == "b1.example.com:9096,b2.example.com:9096"
    assert conf["security.protocol"] == "ssl"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert conf["ssl.ca.pem"] == FAKE_CA
    assert conf["ssl.certificate.pem"] == FAKE_CERT
    assert conf["ssl.key.pem"] == FAKE_KEY
    # Every client kind gets the SSL settings.
    for client_conf in (config.consumer_client_config(), config.producer_client_config()):
        assert client_conf["security.protocol"] == "ssl"
        assert client_conf["ssl.key.pem"] == FAKE_KEY


def test_from_env_ssl_without_certificates_sets_only_the_protocol() -> None:
    config = StreamsConfig.from_env("app", environ={"KAFKA_URL": SSL_URL, "KAFKA_TRUSTED_CERT": ""})
    assert dict(config.client_config) == {
        "security.protocol": "ssl",
        "ssl.endpoint.identification.algorithm": "none",
    }


def test_from_env_settings_and_user_client_config_win() -> None:
    config = StreamsConfig.from_env(
        "app",
        environ=ssl_environ(),
        num_stream_threads=3,
        client_config={"ssl.endpoint.identification.algorithm": "https", "debug": "broker"},
    )
    assert config.num_stream_threads == 3
    assert config.client_config["ssl.endpoint.identification.algorithm"] == "https"
    assert config.client_config["debug"] == "broker"
    assert config.client_config["ssl.ca.pem"] == FAKE_CA


def test_kafka_env_read_collects_heroku_variables() -> None:
    env = KafkaEnv.read(ssl_environ(KAFKA_PREFIX="p."))
    assert env.url == KafkaUrl("b1.example.com:9096,b2.example.com:9096", ssl=True)
    assert env.prefix == "p."
    assert (env.trusted_cert, env.client_cert, env.client_cert_key) == (
        FAKE_CA,
        FAKE_CERT,
        FAKE_KEY,
    )


# -- secrets never show up in errors -----------------------------------------------------------


def test_bad_kafka_url_error_carries_no_certificate() -> None:
    environ = ssl_environ(KAFKA_URL="https://b1.example.com:9096")
    message = config_error(StreamsConfig.from_env, "app", environ=environ)
    assert "KAFKA_URL" in message
    assert_no_secret(message)


@pytest.mark.parametrize(
    "settings",
    [
        {"num_stream_threads": 0},
        {"processing_guarantee": "exactly_once"},
        {"auto_offset_reset": "none"},
    ],
)
def test_invalid_setting_error_carries_no_certificate(settings: dict[str, Any]) -> None:
    message = config_error(StreamsConfig.from_env, "app", environ=ssl_environ(), **settings)
    assert_no_secret(message)


def test_invalid_application_id_with_ssl_error_carries_no_certificate() -> None:
    message = config_error(
        StreamsConfig.from_env, "bad/app", environ=ssl_environ(KAFKA_PREFIX="p.")
    )
    assert_no_secret(message)


def test_invalid_properties_error_carries_no_key() -> None:
    properties = {
        "application.id": "app",
        "ssl.key.pem": FAKE_KEY,
        "ssl.ca.pem": FAKE_CA,
        "num.stream.threads": "two",
    }
    message = config_error(StreamsConfig.from_properties, properties)
    assert "num.stream.threads" in message
    assert_no_secret(message)


# -- from_properties ---------------------------------------------------------------------------


def test_from_properties_maps_kafka_streams_names() -> None:
    config = StreamsConfig.from_properties(
        {
            "application.id": "props-app",
            "bootstrap.servers": "k1:9092,k2:9092",
            "num.stream.threads": "4",
            "commit.interval.ms": "1000",
            "processing.guarantee": "at_least_once",
            "auto.offset.reset": "latest",
            "max.poll.records": "500",
            "default.key.serde": "string",
            "default.value.serde": "Long",
            "client.id": "me",
        }
    )
    assert config.application_id == "props-app"
    assert config.bootstrap_servers == "k1:9092,k2:9092"
    assert config.num_stream_threads == 4
    assert config.commit_interval_ms == 1000
    assert config.auto_offset_reset == "latest"
    assert config.max_poll_records == 500
    assert config.default_key_serde is Serdes.String()
    assert config.default_value_serde is Serdes.Long()
    assert config.client_id == "me"
    assert dict(config.client_config) == {}


def test_from_properties_accepts_serde_class_aliases() -> None:
    config = StreamsConfig.from_properties(
        {
            "application.id": "a",
            "default.key.serde.class": "json",
            "default.value.serde.class": "int",
        }
    )
    assert config.default_key_serde is Serdes.Json()
    assert config.default_value_serde is Serdes.Integer()


def test_from_properties_passes_unknown_names_to_librdkafka() -> None:
    config = StreamsConfig.from_properties(
        {
            "application.id": "a",
            "security.protocol": "ssl",
            "statistics.interval.ms": 5000,
            "compression.type": "lz4",
        }
    )
    assert dict(config.client_config) == {
        "security.protocol": "ssl",
        "statistics.interval.ms": 5000,
        "compression.type": "lz4",
    }
    assert config.producer_client_config()["compression.type"] == "lz4"
    assert config.consumer_client_config()["security.protocol"] == "ssl"


def test_from_properties_requires_application_id() -> None:
    message = config_error(StreamsConfig.from_properties, {"bootstrap.servers": "k:9092"})
    assert "application.id" in message


def test_from_properties_validates_like_the_constructor() -> None:
    config_error(StreamsConfig.from_properties, {"application.id": "a", "num.stream.threads": "0"})
    config_error(
        StreamsConfig.from_properties, {"application.id": "a", "processing.guarantee": "x"}
    )


def test_from_properties_unknown_serde_is_a_config_error() -> None:
    message = config_error(
        StreamsConfig.from_properties, {"application.id": "a", "default.key.serde": "avro"}
    )
    assert "default" in message
    assert "key" in message


def test_from_properties_converts_every_integer_setting() -> None:
    config = StreamsConfig.from_properties(
        {
            "application.id": "a",
            "session.timeout.ms": "10000",
            "poll.ms": "50",
            "startup.timeout.ms": "5000",
        }
    )
    assert config.session_timeout_ms == 10_000
    assert config.poll_ms == 50
    assert config.startup_timeout_ms == 5_000


# -- derived client configs ----------------------------------------------------------------------


def test_consumer_config_is_a_kafka_streams_consumer() -> None:
    config = StreamsConfig(
        application_id="orders-app", bootstrap_servers="k:9092", auto_offset_reset="latest"
    )
    conf = config.consumer_client_config()
    assert conf["group.id"] == "orders-app"
    assert conf["enable.auto.commit"] is False
    assert conf["auto.offset.reset"] == "latest"
    assert conf["bootstrap.servers"] == "k:9092"
    assert conf["client.id"] == "orders-app"
    assert conf["session.timeout.ms"] == config.session_timeout_ms


def test_consumer_config_default_offset_reset_is_earliest() -> None:
    conf = StreamsConfig(application_id="a").consumer_client_config()
    assert conf["auto.offset.reset"] == "earliest"


def test_producer_config_uses_javas_partitioner() -> None:
    conf = StreamsConfig(application_id="a", client_id="me").producer_client_config()
    assert conf["partitioner"] == "murmur2_random"
    assert conf["client.id"] == "me"
    assert "group.id" not in conf


def test_user_consumer_and_producer_config_override_defaults() -> None:
    config = StreamsConfig(
        application_id="a",
        consumer_config={"auto.offset.reset": "latest", "fetch.wait.max.ms": 10},
        producer_config={"linger.ms": 5, "partitioner": "consistent_random"},
    )
    consumer = config.consumer_client_config()
    producer = config.producer_client_config()
    assert consumer["auto.offset.reset"] == "latest"
    assert consumer["fetch.wait.max.ms"] == 10
    assert producer["linger.ms"] == 5
    assert producer["partitioner"] == "consistent_random"
    # Per-kind settings stay with their kind.
    assert "linger.ms" not in consumer
    assert "fetch.wait.max.ms" not in producer


def test_client_config_reaches_every_client_kind() -> None:
    config = StreamsConfig(application_id="a", client_config={"socket.timeout.ms": 1234})
    assert config.consumer_client_config()["socket.timeout.ms"] == 1234
    assert config.producer_client_config()["socket.timeout.ms"] == 1234
