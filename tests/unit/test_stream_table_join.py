"""Stream-table joins and `to_table` in the DSL and the runtime (semantics: the
conformance suite, which runs them against Kafka Streams)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from topicflow import (
    Joined,
    KafkaStreams,
    Materialized,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TimeWindows,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import TopologyError


def _config(application_id: str = "join") -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
    )


def test_the_join_shares_a_sub_topology_and_the_store_with_the_table() -> None:
    builder = StreamsBuilder()
    users = builder.table("users")
    builder.stream("clicks").left_join(users, lambda click, user: f"{click}/{user}").to("out")
    description = str(builder.build().describe())
    # One sub-topology: the task that reads clicks[p] also owns users[p]'s store.
    assert "Sub-topology: 1" not in description
    # Kafka Streams' names (checked against its describe()): the table's store
    # name is generated first, then its source's.
    assert "Processor: KSTREAM-LEFTJOIN-0000000004 (stores: [users-STATE-STORE-0000000000])" in (
        description
    )
    assert "Processor: KTABLE-SOURCE-0000000002 (stores: [users-STATE-STORE-0000000000])" in (
        description
    )
    assert "Source: KSTREAM-SOURCE-0000000001 (topics: [users])" in description


def test_a_rekeyed_stream_is_repartitioned_before_the_join_under_joined_name() -> None:
    builder = StreamsBuilder()
    table = builder.table("t", materialized=Materialized.as_("t-store"))
    (
        builder.stream("s")
        .select_key(lambda k, v: v)
        .join(table, lambda v, tv: tv, Joined.as_("enrich"))
        .to("out")
    )
    topology = builder.build()
    assert set(topology.internal_topics) == {"enrich-repartition", "t-store-changelog"}
    assert "Processor: enrich (stores: [t-store])" in str(topology.describe())


@pytest.mark.parametrize("left", [False, True], ids=["join", "left_join"])
def test_a_rekeyed_join_names_its_repartition_nodes_as_kafka_streams(left: bool) -> None:
    """Kafka Streams 4.1's describe() of `in.selectKey(...).join(builder.table("tin"), ...)`:
    a filter before the repartition sink (it drops null keys for a join, lets them
    through for a left join), the generated names of sink, filter and source."""
    builder = StreamsBuilder()
    stream = builder.stream("in").select_key(lambda k, v: v)
    table = builder.table("tin")
    joined = (
        stream.left_join(table, lambda v, tv: v) if left else stream.join(table, lambda v, tv: v)
    )
    joined.to("out")
    text = str(builder.build().describe())
    assert "      --> KSTREAM-FILTER-0000000006\n" in text
    assert (
        "Processor: KSTREAM-FILTER-0000000006 (stores: [])\n      --> KSTREAM-SINK-0000000005"
        in text
    )
    assert (
        "Sink: KSTREAM-SINK-0000000005 (topic: KSTREAM-KEY-SELECT-0000000001-repartition)" in text
    )
    assert (
        "Source: KSTREAM-SOURCE-0000000007 (topics: [KSTREAM-KEY-SELECT-0000000001-repartition])"
        in text
    )
    join = "KSTREAM-LEFTJOIN-0000000008" if left else "KSTREAM-JOIN-0000000008"
    assert f"Processor: {join} (stores: [tin-STATE-STORE-0000000002])" in text


def test_a_windowed_table_cannot_be_joined() -> None:
    builder = StreamsBuilder()
    windowed = (
        builder.stream("a")
        .group_by_key()
        .windowed_by(TimeWindows.of_size_with_no_grace(__import__("datetime").timedelta(seconds=1)))
        .count()
    )
    with pytest.raises(TopologyError, match=r"windowed table .* cannot be joined"):
        builder.stream("b").join(windowed, lambda v, c: v)


def test_joiner_with_key_and_a_table_derived_by_filter_and_map_values() -> None:
    builder = StreamsBuilder()
    table = builder.table("t").filter(lambda k, v: v != "hidden").map_values(str.upper)
    builder.stream("s").left_join(table, lambda k, v, tv: f"{k}:{v}:{tv}", with_key=True).to("out")
    with TopologyTestDriver(builder.build(), _config()) as driver:
        t = driver.create_input_topic("t")
        s = driver.create_input_topic("s")
        t.pipe_input("a", "alice", timestamp=1)
        t.pipe_input("b", "hidden", timestamp=2)
        s.pipe_input("a", "x", timestamp=10)
        s.pipe_input("b", "y", timestamp=11)
        s.pipe_input("c", "z", timestamp=12)
        t.pipe_input("a", None, timestamp=13)  # a deletion: later lookups find nothing
        s.pipe_input("a", "w", timestamp=14)
        out = driver.create_output_topic("out").read_records_to_list()
    assert [(r.key, r.value, r.timestamp) for r in out] == [
        ("a", "a:x:ALICE", 10),
        ("b", "b:y:None", 11),
        ("c", "c:z:None", 12),
        ("a", "a:w:None", 14),
    ]


def test_to_table_of_a_rekeyed_stream_goes_through_a_repartition_topic() -> None:
    builder = StreamsBuilder()
    builder.stream("s").select_key(lambda k, v: v[0]).to_table(
        materialized=Materialized.as_("latest")
    ).to_stream().to("out")
    topology = builder.build()
    assert set(topology.internal_topics) == {
        "KSTREAM-TOTABLE-0000000002-repartition",
        "latest-changelog",
    }


def test_a_join_runs_on_the_embedded_broker_with_partitions_co_located() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec(t, 3) for t in ("users", "clicks", "enriched")])
    producer = broker.producer({})
    users = {f"u{i}": f"team{i % 4}" for i in range(30)}
    for user, team in users.items():
        producer.produce("users", team.encode(), user.encode())
    producer.flush(1)

    builder = StreamsBuilder()
    table = builder.table("users")
    builder.stream("clicks").join(table, lambda page, team: f"{page}@{team}").to("enriched")
    streams = KafkaStreams(builder.build(), _config("embedded-join"), broker=broker)
    streams.start()
    try:
        deadline = time.monotonic() + 10
        # The table is read first (its records were produced before the clicks).
        while sum(broker.committed_offsets("embedded-join").values()) < len(users):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        clicks = [(f"u{i % 40}", f"p{i}") for i in range(200)]
        for user, page in clicks:
            producer.produce("clicks", page.encode(), user.encode())
        producer.flush(1)
        expected = {(u, f"{p}@{users[u]}") for u, p in clicks if u in users}
        found: set[Any] = set()
        while found != expected and time.monotonic() < deadline + 10:
            time.sleep(0.02)
            found = {
                (k.decode(), v.decode())
                for _p, _o, k, v, _t, _h in broker.read_all("enriched")
                if k is not None and v is not None
            }
    finally:
        assert streams.close(10)
    assert streams.error is None
    # Clicks of users the table does not have (u30..u39) are dropped by the inner join.
    assert found == expected and len(expected) == 150
