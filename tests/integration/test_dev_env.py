"""The development services answer like the production ones would."""

from __future__ import annotations

import time

import psycopg
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where the stubs declare it (admin re-exports it)

import topicflow_dev
from topicflow_dev import DevEnv


def _create_topic(admin: AdminClient, topic: str) -> None:
    # The broker does not auto-create topics (like Heroku's), so tests must.
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=30)


def _round_trip(dev_env: DevEnv, topic: str, group: str, value: bytes) -> bytes | None:
    producer = Producer({"bootstrap.servers": dev_env.bootstrap_servers})
    producer.produce(topic, key=b"k", value=value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": dev_env.bootstrap_servers,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            if message.value() == value:
                return value
        return None
    finally:
        consumer.close()


def test_produce_and_consume(dev_env: DevEnv, unique: str) -> None:
    admin = AdminClient({"bootstrap.servers": dev_env.bootstrap_servers})
    topic = f"dev-env-{unique}"
    _create_topic(admin, topic)
    try:
        assert _round_trip(dev_env, topic, f"g-{unique}", b"hello") == b"hello"
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)


def test_topics_are_not_auto_created(dev_env: DevEnv, unique: str) -> None:
    topic = f"dev-env-missing-{unique}"
    errors: list[KafkaError | None] = []
    # A producer's metadata requests allow auto-creation: the broker must refuse.
    producer = Producer(
        {"bootstrap.servers": dev_env.bootstrap_servers, "message.timeout.ms": 2000}
    )
    producer.produce(topic, value=b"x", on_delivery=lambda error, _message: errors.append(error))
    producer.flush(30)
    assert len(errors) == 1
    assert errors[0] is not None
    admin = AdminClient({"bootstrap.servers": dev_env.bootstrap_servers})
    assert topic not in admin.list_topics(timeout=10).topics


def test_postgres_answers(dev_env: DevEnv) -> None:
    with psycopg.connect(dev_env.database_url, connect_timeout=10) as connection:
        row = connection.execute("SELECT current_user, current_database(), 1 + 1").fetchone()
    assert row == ("topicflow", "topicflow", 2)


def test_up_is_idempotent(dev_env: DevEnv) -> None:
    started = time.monotonic()
    assert topicflow_dev.up() == dev_env
    assert topicflow_dev.up() == dev_env
    # Running services are recognised, not restarted.
    assert time.monotonic() - started < 5


def test_env_matches_up(dev_env: DevEnv) -> None:
    assert topicflow_dev.env() == dev_env
    assert dev_env.kafka_url == f"kafka://{dev_env.bootstrap_servers}"
    assert dev_env.database_url.startswith("postgres://topicflow:topicflow@127.0.0.1:")


def test_postgres_restarts(dev_env: DevEnv, unique: str) -> None:
    table = f"bounce_{unique}"
    with psycopg.connect(dev_env.database_url, autocommit=True) as connection:
        connection.execute(f"CREATE TABLE {table} (n int)")
        connection.execute(f"INSERT INTO {table} VALUES (42)")
    assert topicflow_dev.stop_postgres() is True
    assert topicflow_dev.stop_postgres() is False
    try:
        psycopg.connect(dev_env.database_url, connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("PostgreSQL still answers after stop_postgres()")
    assert topicflow_dev.start_postgres() is True
    with psycopg.connect(dev_env.database_url, autocommit=True) as connection:
        row = connection.execute(f"SELECT n FROM {table}").fetchone()
        connection.execute(f"DROP TABLE {table}")
    assert row == (42,)


def test_kafka_restarts(dev_env: DevEnv, unique: str) -> None:
    admin = AdminClient({"bootstrap.servers": dev_env.bootstrap_servers})
    topic = f"dev-env-bounce-{unique}"
    _create_topic(admin, topic)
    assert topicflow_dev.stop_kafka() is True
    assert topicflow_dev.stop_kafka() is False
    assert topicflow_dev.start_kafka() is True
    # The topic survived the restart: the log directory is kept.
    try:
        assert _round_trip(dev_env, topic, f"g-{unique}", b"again") == b"again"
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)
