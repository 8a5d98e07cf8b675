"""Foreign-key table joins (KIP-213) in the DSL and the runtime (semantics: the
conformance suite, which runs them against Kafka Streams)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from topicflow import (
    KafkaStreams,
    Materialized,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TableJoined,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.cli.apps import App
from topicflow.cli.topics import topic_specs
from topicflow.dsl import foreign_key_join as fk
from topicflow.errors import TopologyError
from topicflow.runtime.internal_topics import internal_topic_specs

REGISTRATION = "KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0000000006-topic"
RESPONSE = "KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-0000000014-topic"


def _config(application_id: str = "fkjoin", state_dir: Path | None = None) -> StreamsConfig:
    extra = {} if state_dir is None else {"state_dir": str(state_dir)}
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
        **extra,  # type: ignore[arg-type]
    )


def _joined(value: str | None, other: str | None) -> str:
    return f"{value}+{other}"


def _first(value: str) -> str | None:
    return value[0] if value else None


def _fk_join(left: bool = False, **options: Any) -> Any:
    builder = StreamsBuilder()
    orders, customers = builder.table("tin"), builder.table("tin2")
    join = orders.left_join if left else orders.join
    join(customers, _joined, foreign_key_extractor=_first, **options).to_stream().to("out")
    return builder.build()


def test_describe_names_are_kafka_streams() -> None:
    # Checked against Kafka Streams 4.1's describe() of the same topology.
    description = str(_fk_join().describe())
    for line in (
        "Source: KTABLE-SOURCE-0000000016 (topics: [" + RESPONSE + "])",
        "Processor: KTABLE-FK-JOIN-SUBSCRIPTION-RESPONSE-RESOLVER-PROCESSOR-0000000017 "
        "(stores: [tin-STATE-STORE-0000000000])",
        "Processor: KTABLE-FK-JOIN-OUTPUT-0000000018 (stores: [])",
        "Processor: KTABLE-FK-JOIN-SUBSCRIPTION-REGISTRATION-0000000007 (stores: [])",
        "Sink: KTABLE-SINK-0000000008 (topic: " + REGISTRATION + ")",
        "Source: KTABLE-SOURCE-0000000009 (topics: [" + REGISTRATION + "])",
        "Processor: KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-0000000011 "
        "(stores: [KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-0000000010])",
        "Processor: KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-0000000012 "
        "(stores: [tin2-STATE-STORE-0000000003])",
        "Processor: KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-0000000013 "
        "(stores: [KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-0000000010])",
        "Sink: KTABLE-SINK-0000000015 (topic: " + RESPONSE + ")",
        "<-- KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-0000000012, "
        "KTABLE-FK-JOIN-SUBSCRIPTION-PROCESSOR-0000000013",
        # The result's store name is generated even when it is not materialized.
        "Processor: KTABLE-TOSTREAM-0000000020 (stores: [])",
    ):
        assert line in description, line
    # The left table's side, then the foreign table's, as Kafka numbers them.
    first, second = description.split("Sub-topology: 1")
    assert "topics: [tin]" in first and "topics: [tin2]" in second


def test_describe_names_under_a_join_name_and_a_store() -> None:
    description = str(_fk_join(named="tj", materialized=Materialized.as_("fk-store")).describe())
    for line in (
        "Source: tj-subscription-response-source (topics: [tj-subscription-response-topic])",
        "Processor: tj-subscription-response-resolver (stores: [tin-STATE-STORE-0000000000])",
        "Processor: tj-result (stores: [fk-store])",
        "Processor: KTABLE-TOSTREAM-0000000006 (stores: [])",
        "Processor: tj-subscription-registration-processor (stores: [])",
        "Sink: tj-subscription-registration-sink (topic: tj-subscription-registration-topic)",
        "Source: tj-subscription-registration-source "
        "(topics: [tj-subscription-registration-topic])",
        "Processor: tj-subscription-receive (stores: [tj-subscription-store])",
        "Processor: tj-subscription-join-foreign (stores: [tin2-STATE-STORE-0000000003])",
        "Processor: tj-foreign-join-subscription (stores: [tj-subscription-store])",
        "Sink: tj-subscription-response-sink (topic: tj-subscription-response-topic)",
    ):
        assert line in description, line


def test_topics_lists_the_subscription_and_response_topics_and_the_store_changelogs() -> None:
    topology = _fk_join()
    specs = {s.name for s in topic_specs(App("fk", topology, _config("shop")), 3, -1)}
    assert specs == {
        "tin",
        "tin2",
        "out",
        f"shop-{REGISTRATION}",
        f"shop-{RESPONSE}",
        "shop-KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-0000000010-changelog",
        "shop-tin-STATE-STORE-0000000000-changelog",
        "shop-tin2-STATE-STORE-0000000003-changelog",
    }


def test_the_internal_topics_are_partitioned_as_the_tables_they_meet() -> None:
    """Subscriptions meet the foreign table's partitions, responses the left table's
    (Kafka Streams' co-partitioning), whatever the other side's partition count."""
    topology = _fk_join()
    specs = internal_topic_specs(topology, topology.subtopologies(), {"tin": 3, "tin2": 5}, "app")
    partitions = {s.name: s.partitions for s in specs}
    assert partitions[f"app-{REGISTRATION}"] == 5
    assert partitions[f"app-{RESPONSE}"] == 3
    assert partitions["app-KTABLE-FK-JOIN-SUBSCRIPTION-STATE-STORE-0000000010-changelog"] == 5
    assert partitions["app-tin-STATE-STORE-0000000000-changelog"] == 3


def _run(topology: Any, steps: list[tuple[str, str, str | None, int]]) -> list[Any]:
    with TopologyTestDriver(topology, _config()) as driver:
        topics = {t: driver.create_input_topic(t) for t in ("tin", "tin2")}
        for topic, key, value, timestamp in steps:
            topics[topic].pipe_input(key, value, timestamp=timestamp)
        out = driver.create_output_topic("out").read_records_to_list()
    return [(r.key, r.value, r.timestamp) for r in out]


STEPS = [
    ("tin", "o1", "a1", 10),  # no customer "a" yet: nothing (inner), a1+None (left)
    ("tin2", "a", "Ann", 5),  # answers o1, at the foreign row's timestamp
    ("tin", "o2", "a2", 20),
    ("tin2", "a", "Anna", 30),  # answers o1 and o2
    ("tin", "o1", "b1", 40),  # a new foreign key that has no row
    ("tin2", "b", "Bob", 50),
    ("tin", "o2", None, 60),  # the left row deleted
    ("tin2", "b", None, 70),  # the foreign row deleted
]


def test_inner_join_follows_foreign_key_changes_and_deletions() -> None:
    assert _run(_fk_join(), STEPS) == [
        ("o1", "a1+Ann", 5),
        ("o2", "a2+Ann", 20),
        ("o1", "a1+Anna", 30),
        ("o2", "a2+Anna", 30),
        ("o1", None, 40),
        ("o1", "b1+Bob", 50),
        ("o2", None, 60),
        ("o1", None, 70),
    ]


def test_left_join_keeps_every_left_row() -> None:
    assert _run(_fk_join(left=True), STEPS) == [
        ("o1", "a1+None", 10),
        ("o1", "a1+Ann", 5),
        ("o2", "a2+Ann", 20),
        ("o1", "a1+Anna", 30),
        ("o2", "a2+Anna", 30),
        ("o1", "b1+None", 40),
        ("o1", "b1+Bob", 50),
        ("o2", None, 60),
        ("o1", "b1+None", 70),
    ]


def test_the_extractor_may_take_the_key() -> None:
    builder = StreamsBuilder()
    builder.table("tin").join(
        builder.table("tin2"),
        _joined,
        foreign_key_extractor=lambda key, value: key[0],
        extractor_with_key=True,
    ).to_stream().to("out")
    out = _run(builder.build(), [("tin2", "x", "X", 1), ("tin", "x7", "v", 2)])
    assert out == [("x7", "v+X", 2)]


def test_a_response_for_a_replaced_left_value_is_dropped() -> None:
    """A response carries the hash of the left value it answers: one that arrives after
    the value changed (on another partition's schedule) is stale and dropped."""
    with TopologyTestDriver(_fk_join(), _config()) as driver:
        driver.create_input_topic("tin2").pipe_input("a", "Ann", timestamp=1)
        driver.create_input_topic("tin").pipe_input("o1", "a1", timestamp=2)
        topic = f"fkjoin-{RESPONSE}"
        stale = fk.response_bytes(fk.value_hash(b"a0"), b"Old", 0)
        current = fk.response_bytes(fk.value_hash(b"a1"), b"New", 0)
        driver.pipe_raw(topic, b"o1", stale, 3)
        driver.pipe_raw(topic, b"o1", current, 4)
        out = driver.create_output_topic("out").read_records_to_list()
        dropped = driver.metrics.dropped_records
    assert [(r.key, r.value, r.timestamp) for r in out] == [
        ("o1", "a1+Ann", 2),
        ("o1", "a1+New", 4),
    ]
    assert dropped == 1


def _restart_topology() -> Any:
    builder = StreamsBuilder()
    builder.table("orders").join(
        builder.table("customers"), _joined, foreign_key_extractor=_first
    ).to_stream().to("out")
    return builder.build()


def test_subscriptions_restore_from_their_changelog(tmp_path: Path) -> None:
    """After a restart, an update of the foreign table still finds the rows that
    subscribed to it before (the subscription store, and its index, restored)."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, 1) for t in ("orders", "customers", "out")])
    producer = broker.producer({})

    def produce(topic: str, key: str, value: str) -> None:
        producer.produce(topic, value.encode(), key.encode())
        producer.flush(1)

    def run(until: int) -> None:
        streams = KafkaStreams(_restart_topology(), _config("fk-restore", tmp_path), broker=broker)
        streams.start()
        deadline = time.monotonic() + 10
        while sum(broker.committed_offsets("fk-restore").values()) < until:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert streams.close(10)
        assert streams.error is None

    produce("customers", "a", "Ann")
    produce("orders", "o1", "a1")
    # Committed: the two inputs, the subscription and its response.
    run(4)
    produce("customers", "a", "Anna")
    run(6)
    out = [(k.decode(), v.decode()) for _p, _o, k, v, _t, _h in broker.read_all("out")]
    assert out == [("o1", "a1+Ann"), ("o1", "a1+Anna")]


def test_the_foreign_table_may_be_an_aggregation_with_its_own_serdes() -> None:
    """A count's values are Longs: they travel in responses with the count's serde,
    not the default String one."""
    builder = StreamsBuilder()
    counts = builder.stream("clicks").group_by_key().count()
    builder.table("tin").left_join(
        counts, lambda v, c: f"{v}#{c}", foreign_key_extractor=_first
    ).to_stream().to("out")
    with TopologyTestDriver(builder.build(), _config()) as driver:
        clicks = driver.create_input_topic("clicks")
        clicks.pipe_input("a", "x", timestamp=1)
        clicks.pipe_input("a", "y", timestamp=2)
        driver.create_input_topic("tin").pipe_input("o1", "a1", timestamp=3)
        clicks.pipe_input("a", "z", timestamp=4)
        out = driver.create_output_topic("out").read_records_to_list()
    assert [(r.key, r.value, r.timestamp) for r in out] == [("o1", "a1#2", 3), ("o1", "a1#3", 4)]


def test_a_join_across_tables_of_different_partition_counts(tmp_path: Path) -> None:
    """Subscriptions reach the customers' partition of their foreign key, responses come
    back to the partition of their order: every order finds its customer."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("orders", 3), TopicSpec("customers", 2), TopicSpec("out", 3)])
    producer = broker.producer({})
    customers = {f"c{i}": f"name{i}" for i in range(7)}
    for key, name in customers.items():
        producer.produce("customers", name.encode(), key.encode())
    orders = {f"o{i}": f"c{i % 9}" for i in range(40)}  # c7, c8: no such customer
    for i, (key, customer) in enumerate(orders.items()):
        # Partitions chosen by the producer, not by key: a response must come back to
        # the order's partition, not to its key's.
        producer.produce("orders", customer.encode(), key.encode(), i % 3)
    producer.flush(1)
    builder = StreamsBuilder()
    builder.table("orders").left_join(
        builder.table("customers"), _joined, foreign_key_extractor=lambda v: v
    ).to_stream().to("out")
    streams = KafkaStreams(builder.build(), _config("fk-partitions", tmp_path), broker=broker)
    expected = {k: f"{c}+{customers.get(c)}" for k, c in orders.items()}
    streams.start()
    try:
        deadline = time.monotonic() + 15
        latest: dict[str, str] = {}
        while latest != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            for _p, _o, k, v, _t, _h in sorted(broker.read_all("out"), key=lambda r: (r[0], r[1])):
                assert k is not None and v is not None
                latest[k.decode()] = v.decode()
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert latest == expected


def test_subscriptions_follow_the_foreign_topics_own_partitioner(tmp_path: Path) -> None:
    """Customers written by a partitioner of their own (not by key hash): TableJoined's
    other partitioner sends each subscription where its customer is."""
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("orders", 3), TopicSpec("customers", 2), TopicSpec("out", 3)])
    producer = broker.producer({})

    def placement(topic: str, key: Any, value: Any, partitions: int) -> int:
        return int(key[1:]) % partitions

    customers = {f"c{i}": f"name{i}" for i in range(8)}
    for key, name in customers.items():
        producer.produce("customers", name.encode(), key.encode(), placement("", key, None, 2))
    orders = {f"o{i}": f"c{i % 8}" for i in range(24)}
    for key, customer in orders.items():
        producer.produce("orders", customer.encode(), key.encode())
    producer.flush(1)
    builder = StreamsBuilder()
    builder.table("orders").join(
        builder.table("customers"),
        _joined,
        TableJoined.with_(placement),
        foreign_key_extractor=lambda v: v,
    ).to_stream().to("out")
    streams = KafkaStreams(builder.build(), _config("fk-placement", tmp_path), broker=broker)
    expected = {k: f"{c}+{customers[c]}" for k, c in orders.items()}
    latest: dict[str, str] = {}
    streams.start()
    try:
        deadline = time.monotonic() + 15
        while latest != expected and time.monotonic() < deadline:
            time.sleep(0.05)
            for _p, _o, k, v, _t, _h in sorted(broker.read_all("out"), key=lambda r: (r[0], r[1])):
                assert k is not None and v is not None
                latest[k.decode()] = v.decode()
    finally:
        assert streams.close(10)
    assert streams.error is None
    assert latest == expected


def test_table_joined_names_only_a_foreign_key_join() -> None:
    builder = StreamsBuilder()
    with pytest.raises(TopologyError, match="TableJoined"):
        builder.table("a").join(builder.table("b"), _joined, TableJoined.as_("j"))
