"""The production handler on real Kafka: a record the broker refuses, and one too large to send.

Two ways a record fails to be produced, both skipped with log_and_continue
and dead-lettered, while every other record goes through and is committed:

- larger than the producer may send (librdkafka's message.max.bytes): refused
  by produce() itself, with the source record at hand;
- accepted by the producer, refused by the broker in the delivery report
  (the output topic's max.message.bytes is smaller): the handler gets the
  output record, and the dead letter carries it.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.kafka_tools import committed_total, create_topics, wait_until
from topicflow import KafkaStreams, Serdes, State, StreamsBuilder, StreamsConfig
from topicflow_dev import DevEnv


def read_all(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{topic}-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                found.append(message)
    finally:
        consumer.close()
    return found


def make_topics(bootstrap: str, plain: list[str], limits: dict[str, int]) -> None:
    create_topics(bootstrap, plain, 1)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [
        NewTopic(name, 1, 1, config={"max.message.bytes": str(limit)})
        for name, limit in limits.items()
    ]
    for future in admin.create_topics(topics).values():
        future.result(30)


def produce_values(bootstrap: str, topic: str, values: list[str]) -> None:
    # The test's own producer may send 1.5 MB; the app's keeps librdkafka's 1 MB.
    producer = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4_000_000})
    failures: list[Any] = []
    for i, value in enumerate(values):
        producer.produce(
            topic,
            value.encode(),
            f"k{i}".encode(),
            on_delivery=lambda e, _m: e and failures.append(e),
        )
    assert producer.flush(30) == 0 and not failures, failures


def run_until_committed(
    builder: StreamsBuilder, config: StreamsConfig, source: str, count: int
) -> dict[str, int]:
    with KafkaStreams(builder.build(), config) as streams:
        streams.start()
        wait_until(
            lambda: (
                committed_total(config.bootstrap_servers or "", config.application_id, source, 1)
                == count
            ),
            60,
            "every input offset committed",
            [],
        )
        assert streams.state is State.RUNNING
        return streams.metrics()


def app_config(unique: str, bootstrap: str, dlq: str, **overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id=f"production-{unique}",
        bootstrap_servers=bootstrap,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        production_exception_handler="log_and_continue",
        errors_dead_letter_queue_topic_name=dlq,
        commit_interval_ms=200,
        # A 1.5 MB input record must be readable.
        consumer_config={"fetch.max.bytes": 8 * 1024 * 1024},
        **overrides,
    )


def test_records_larger_than_a_written_topic_takes_are_refused_alone(
    dev_env: DevEnv, unique: str
) -> None:
    """The producer's limit is the smallest max.message.bytes of the topics it writes, so
    an oversized record is refused by produce() with its source record at hand, and
    the broker never refuses a batch of good records for a bad one."""
    bootstrap = dev_env.bootstrap_servers
    source, out, small, dlq = (f"{n}-{unique}" for n in ("in", "out", "small", "dlq"))
    # The input may hold a 1.5 MB record (the broker's default is 1 MB); `small`
    # refuses batches over 2 kB.
    make_topics(bootstrap, [out, dlq], {source: 4 * 1024 * 1024, small: 2048})
    builder = StreamsBuilder()
    stream = builder.stream(source)
    stream.to(out)
    stream.filter(lambda _k, v: not v.startswith("huge")).to(small)
    huge = "huge" + "x" * 1_500_000
    medium = "medium" + "y" * 5_000
    values = ["a", "b", medium, "c", huge, "d"]
    produce_values(bootstrap, source, values)

    metrics = run_until_committed(builder, app_config(unique, bootstrap, dlq), source, len(values))
    # medium: too large for the producer's 2 kB, to both outputs; huge: to `out`.
    assert metrics["production_errors"] == 3, metrics
    assert metrics["dead_lettered"] == 3, metrics
    assert [m.value() for m in read_all(bootstrap, out, 4)] == [b"a", b"b", b"c", b"d"]
    assert [m.value() for m in read_all(bootstrap, small, 4)] == [b"a", b"b", b"c", b"d"]
    letters = read_all(bootstrap, dlq, 3)
    assert sorted(m.key() for m in letters) == [b"k2", b"k2", b"k4"]
    for letter in letters:
        headers = dict(letter.headers())
        # The source record with its coordinates; its value too large for the
        # producer's 2 kB, so left out and its size given.
        assert letter.value() is None
        source_value = values[int(letter.key()[1:])].encode()
        assert headers["topicflow.errors.value.dropped"] == str(len(source_value)).encode()
        assert headers["__streams.errors.topic"] == source.encode()
        assert headers["__streams.errors.partition"] == b"0"
        assert headers["__streams.errors.offset"] == letter.key()[1:]
        assert b"MSG_SIZE_TOO_LARGE" in headers["__streams.errors.exception"]


def test_a_record_the_broker_refuses_after_sending_goes_to_the_handler(
    dev_env: DevEnv, unique: str
) -> None:
    """With message.max.bytes set by the user, the broker refuses in the delivery report:
    the handler gets the output record (the source is processed already)."""
    bootstrap = dev_env.bootstrap_servers
    source, small, dlq = (f"{n}-{unique}" for n in ("in", "small", "dlq"))
    make_topics(bootstrap, [source, dlq], {small: 2048})
    builder = StreamsBuilder()
    builder.stream(source).to(small)
    medium = "medium" + "y" * 5_000
    produce_values(bootstrap, source, [medium])
    config = app_config(unique, bootstrap, dlq, producer_config={"message.max.bytes": 1_000_000})

    metrics = run_until_committed(builder, config, source, 1)
    assert metrics["production_errors"] == 1, metrics
    (letter,) = read_all(bootstrap, dlq, 1)
    headers = dict(letter.headers())
    assert (letter.key(), letter.value()) == (b"k0", medium.encode())
    assert headers["__streams.errors.offset"] == b"-1"
    assert b"MSG_SIZE_TOO_LARGE" in headers["__streams.errors.exception"]
    assert read_all(bootstrap, small, 1, timeout=3) == []
