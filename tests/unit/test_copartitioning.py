"""Co-partitioning: a join's input topics must have as many partitions each,
checked at start; its repartition topics get the user topics' count (Kafka
Streams' CopartitionedTopicsEnforcer)."""

from __future__ import annotations

import pytest

from topicflow import KafkaStreams, Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import TopologyError
from topicflow.runtime.internal_topics import internal_topic_specs
from topicflow.runtime.runner import EXIT_BAD_SETUP, run_until_signal


def _config(application_id: str) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=50,
        poll_ms=10,
    )


def _join(rekey: bool = False) -> StreamsBuilder:
    builder = StreamsBuilder()
    table = builder.table("users")
    clicks = builder.stream("clicks")
    if rekey:
        clicks = clicks.select_key(lambda _k, v: v)
    clicks.join(table, lambda page, team: f"{page}@{team}").to("enriched")
    return builder


def test_a_join_registers_its_input_topics_as_a_copartition_group() -> None:
    assert _join().build().copartition_groups() == [["clicks", "users"]]
    # Re-keyed: the stream side is read back from its repartition topic.
    topology = _join(rekey=True).build()
    assert topology.copartition_groups() == [["KSTREAM-KEY-SELECT-0000000004-repartition", "users"]]


def test_a_join_of_topics_with_different_partition_counts_fails_at_start() -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("users", 3), TopicSpec("clicks", 4), TopicSpec("enriched", 4)])
    streams = KafkaStreams(_join().build(), _config("copartition-mismatch"), broker=broker)
    with pytest.raises(TopologyError) as raised:
        streams.start()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        "topics not co-partitioned: clicks has 4 partitions, users has 3 partitions;"
    )
    assert streams.tasks() == {}  # no worker started
    streams.close(1)


def test_a_service_whose_join_inputs_are_not_co_partitioned_exits_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("users", 2), TopicSpec("clicks", 4), TopicSpec("enriched", 4)])

    def make_streams() -> KafkaStreams:
        return KafkaStreams(_join().build(), _config("copartition-exit"), broker=broker)

    assert run_until_signal("joiner", make_streams, describe=False) == EXIT_BAD_SETUP
    assert capsys.readouterr().err == (
        "joiner: topics not co-partitioned: clicks has 4 partitions, users has 2 "
        "partitions; a join's input topics need the same number of partitions (recreate "
        "one with the other's count, or repartition one side)\n"
    )


def test_a_rekeyed_joins_repartition_topic_gets_the_tables_partition_count() -> None:
    topology = _join(rekey=True).build()
    counts = {"users": 2, "clicks": 4, "enriched": 4}
    specs = {
        s.name: s.partitions
        for s in internal_topic_specs(topology, topology.subtopologies(), counts, "app")
    }
    # The widest upstream source would give 4; the table it joins has 2.
    assert specs["app-KSTREAM-KEY-SELECT-0000000004-repartition"] == 2
    assert specs["app-users-STATE-STORE-0000000000-changelog"] == 2

    # And so it is created at start on the embedded broker.
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("users", 2), TopicSpec("clicks", 4), TopicSpec("enriched", 4)])
    streams = KafkaStreams(topology, _config("copartition-rekey"), broker=broker)
    streams.start()
    try:
        name = "copartition-rekey-KSTREAM-KEY-SELECT-0000000004-repartition"
        assert broker.admin().partition_counts([name], 1) == {name: 2}
    finally:
        assert streams.close(10)
    assert streams.error is None


def test_repartition_topics_with_a_set_count_must_match_the_user_topics() -> None:
    topology = _join(rekey=True).build()
    internal = topology.internal_topics
    name = "KSTREAM-KEY-SELECT-0000000004-repartition"
    internal[name] = type(internal[name])(name, "repartition", 3)
    with pytest.raises(TopologyError, match=r"has 3 partitions .* topics of 2 partitions"):
        internal_topic_specs(
            topology, topology.subtopologies(), {"users": 2, "clicks": 4, "enriched": 4}, "a"
        )
