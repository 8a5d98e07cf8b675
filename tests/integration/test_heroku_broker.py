"""The Heroku-like dev broker behaves like Apache Kafka on Heroku (a multi-tenant plan).

Clients are built the way a topicflow app builds them: `StreamsConfig.from_env`
on the app's Heroku variables, then `base_client_config()` (SSL, no host name
verification, certificates in memory). Each denial must surface within seconds;
the tests print how long it took (`pytest -s` or `-rP` shows it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where the stubs declare it (admin re-exports it)

from topicflow.config import StreamsConfig
from topicflow_dev.heroku_broker import HerokuKafka, start_heroku_kafka

if TYPE_CHECKING:
    # Only for annotations: the plugin module is imported by pytest_plugins,
    # first, so that pytest rewrites its asserts.
    from tests.integration.heroku_conftest import HerokuApp


# "Within seconds": every failure below surfaces in well under a second on a
# laptop; the bound leaves room for a loaded CI machine.
SURFACES_WITHIN_S = 5.0
WAIT_S = 30.0


def _config(app: HerokuApp, env: dict[str, str] | None = None) -> StreamsConfig:
    return StreamsConfig.from_env("t-app", environ=env if env is not None else app.env)


def _client_config(app: HerokuApp, **overrides: Any) -> dict[str, Any]:
    return {**_config(app).base_client_config(), **overrides}


def _report(what: str, elapsed: float, error: KafkaError) -> None:
    print(f"\n{what}: {elapsed:.3f} s: {error.name()} ({error.code()}): {error.str()}")
    assert elapsed < SURFACES_WITHIN_S, f"{what} took {elapsed:.1f} s to surface"


def _first_consumer_error(consumer: Consumer, started: float) -> tuple[KafkaError, float]:
    """The first error `poll` returns, and when (seconds since `started`)."""
    deadline = started + WAIT_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.05)
        if message is None:
            continue
        error = message.error()
        assert error is not None, f"unexpected record {message.value()!r}"
        return error, time.monotonic() - started
    raise AssertionError(f"no error within {WAIT_S:.0f} s")


def _first_client_error(
    make: Callable[[Callable[[KafkaError], None]], Producer],
) -> tuple[KafkaError, float]:
    """The first error librdkafka reports to `error_cb` of a new producer, and when."""
    errors: list[tuple[KafkaError, float]] = []
    started = time.monotonic()
    producer = make(lambda error: errors.append((error, time.monotonic() - started)))
    deadline = started + WAIT_S
    while not errors and time.monotonic() < deadline:
        producer.poll(0.02)
    assert errors, f"no error within {WAIT_S:.0f} s"
    return errors[0]


def _connects(conf: dict[str, Any]) -> bool:
    admin = AdminClient({**conf, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=10).brokers)
    except KafkaException:
        return False


def test_env_holds_exactly_herokus_variables(heroku_app: HerokuApp) -> None:
    env = heroku_app.env
    assert set(env) == {
        "KAFKA_URL",
        "KAFKA_TRUSTED_CERT",
        "KAFKA_CLIENT_CERT",
        "KAFKA_CLIENT_CERT_KEY",
        "KAFKA_PREFIX",
    }
    assert env["KAFKA_URL"].startswith("kafka+ssl://127.0.0.1:")
    assert env["KAFKA_PREFIX"] == heroku_app.prefix
    assert env["KAFKA_TRUSTED_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    assert env["KAFKA_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in env["KAFKA_CLIENT_CERT_KEY"]
    conf = _client_config(heroku_app)
    assert conf["security.protocol"] == "ssl"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_start_is_idempotent(heroku_kafka: HerokuKafka) -> None:
    started = time.monotonic()
    assert start_heroku_kafka() == heroku_kafka
    assert time.monotonic() - started < 5


def test_produce_and_consume_on_a_prefixed_topic(heroku_app: HerokuApp) -> None:
    (topic,) = heroku_app.create_topics(["words"])
    config = _config(heroku_app)
    producer = Producer(config.base_client_config())
    producer.produce(topic, key=b"k", value=b"hello heroku")
    assert producer.flush(WAIT_S) == 0
    # The app's own group, `<prefix>t-app`: allowed by the prefix ACL.
    consumer = Consumer(
        {
            **config.base_client_config(),
            "group.id": config.application_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + WAIT_S
        message: Message | None = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.2)
        assert message is not None, "no record"
        assert message.error() is None, message.error()
        assert message.value() == b"hello heroku"
        # Committing needs Read on the group and the topic.
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


def test_creating_a_topic_is_denied(heroku_app: HerokuApp) -> None:
    admin = AdminClient(_client_config(heroku_app))
    topic = heroku_app.topic("made-by-the-app")
    started = time.monotonic()
    future = admin.create_topics([NewTopic(topic, 1, 1)])[topic]
    with pytest.raises(KafkaException) as raised:
        future.result(WAIT_S)
    error: KafkaError = raised.value.args[0]
    _report("create topic", time.monotonic() - started, error)
    assert error.code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    )
    assert topic not in AdminClient(_client_config(heroku_app)).list_topics(timeout=10).topics


def test_reading_a_topic_without_the_prefix_is_denied(
    heroku_app: HerokuApp, heroku_kafka: HerokuKafka, unique: str
) -> None:
    other = f"other-app-{unique}.words"
    heroku_kafka.create_topics([other])
    try:
        config = _config(heroku_app)
        started = time.monotonic()
        consumer = Consumer(
            {
                **config.base_client_config(),
                "group.id": config.application_id,
                "auto.offset.reset": "earliest",
            }
        )
        try:
            consumer.subscribe([other])
            error, elapsed = _first_consumer_error(consumer, started)
        finally:
            consumer.close()
        _report("read topic without prefix", elapsed, error)
        assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        heroku_kafka.delete_topics([other])


def test_writing_a_topic_without_the_prefix_is_denied(
    heroku_app: HerokuApp, heroku_kafka: HerokuKafka, unique: str
) -> None:
    other = f"other-app-{unique}.words"
    heroku_kafka.create_topics([other])
    try:
        errors: list[KafkaError | None] = []
        started = time.monotonic()
        producer = Producer(_client_config(heroku_app, **{"message.timeout.ms": 10_000}))
        producer.produce(other, value=b"x", on_delivery=lambda error, _msg: errors.append(error))
        assert producer.flush(WAIT_S) == 0
        elapsed = time.monotonic() - started
        assert len(errors) == 1
        assert errors[0] is not None
        _report("write topic without prefix", elapsed, errors[0])
        assert errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        heroku_kafka.delete_topics([other])


def test_a_group_without_the_prefix_is_denied(heroku_app: HerokuApp, unique: str) -> None:
    (topic,) = heroku_app.create_topics(["words"])
    started = time.monotonic()
    consumer = Consumer(
        {
            **_client_config(heroku_app),
            "group.id": f"other-group-{unique}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        error, elapsed = _first_consumer_error(consumer, started)
    finally:
        consumer.close()
    _report("group without prefix", elapsed, error)
    assert error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_transactions_are_denied(heroku_app: HerokuApp) -> None:
    # Even a transactional id with the app's prefix: no ACL allows any.
    producer = Producer(
        _client_config(heroku_app, **{"transactional.id": heroku_app.topic("t-app-0")})
    )
    started = time.monotonic()
    with pytest.raises(KafkaException) as raised:
        producer.init_transactions(WAIT_S)
    error: KafkaError = raised.value.args[0]
    _report("init_transactions", time.monotonic() - started, error)
    assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert error.fatal()


def test_verifying_host_names_fails(heroku_app: HerokuApp) -> None:
    # The broker's certificate names no host (CN=kafka-broker, no SAN): a
    # client checking the host name fails, the same client without the check connects.
    assert _connects(_client_config(heroku_app))
    error, elapsed = _first_client_error(
        lambda on_error: Producer(
            _client_config(
                heroku_app,
                **{"ssl.endpoint.identification.algorithm": "https", "error_cb": on_error},
            )
        )
    )
    _report("host name verification", elapsed, error)
    assert error.code() == KafkaError._SSL
    assert "certificate verify failed" in error.str()


def test_a_client_certificate_from_an_unknown_ca_is_rejected(heroku_app: HerokuApp) -> None:
    error, elapsed = _first_client_error(
        lambda on_error: Producer(
            _client_config(
                heroku_app,
                **{
                    "ssl.certificate.pem": heroku_app.kafka.unknown_ca_client_cert,
                    "ssl.key.pem": heroku_app.kafka.unknown_ca_client_cert_key,
                    "error_cb": on_error,
                },
            )
        )
    )
    _report("client certificate from an unknown CA", elapsed, error)
    # TLS 1.3: the client finishes its side of the handshake, then reads the
    # broker's alert while sending its first request (ApiVersion).
    assert error.code() == KafkaError._TRANSPORT
    assert "bad certificate" in error.str()


def test_a_trusted_cert_with_two_cas_works(heroku_app: HerokuApp) -> None:
    # During a CA rotation KAFKA_TRUSTED_CERT holds the new CA and the old
    # one; the broker's certificate is still signed by the old (second) one.
    kafka = heroku_app.kafka
    rotated = {**heroku_app.env, "KAFKA_TRUSTED_CERT": kafka.next_ca_cert + kafka.trusted_cert}
    assert rotated["KAFKA_TRUSTED_CERT"].count("BEGIN CERTIFICATE") == 2
    assert _connects(_config(heroku_app, rotated).base_client_config())
    (topic,) = heroku_app.create_topics(["rotation"])
    producer = Producer(_config(heroku_app, rotated).base_client_config())
    producer.produce(topic, value=b"x")
    assert producer.flush(WAIT_S) == 0
    # The control: the new CA alone does not do (so the bundle's second
    # certificate is really read, not only its first).
    new_only = {**heroku_app.env, "KAFKA_TRUSTED_CERT": kafka.next_ca_cert}
    error, _elapsed = _first_client_error(
        lambda on_error: Producer(
            {**_config(heroku_app, new_only).base_client_config(), "error_cb": on_error}
        )
    )
    assert error.code() == KafkaError._SSL
