"""The embedded consumer's pause/resume, manual assignment and watermarks, as confluent-kafka's."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    OFFSET_STORED,
    TopicSpec,
)
from topicflow.brokers.embedded import EmbeddedBroker, EmbeddedConsumer


@pytest.fixture
def broker() -> EmbeddedBroker:
    b = EmbeddedBroker(default_partitions=4)
    b.create_topics([TopicSpec("t", 4)])
    return b


def consumer(
    broker: EmbeddedBroker, group: str = "g", config: dict[str, Any] | None = None
) -> EmbeddedConsumer:
    conf: dict[str, Any] = {
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(config or {})
    return broker.consumer(conf)


def produce(broker: EmbeddedBroker, partition: int, n: int, topic: str = "t") -> None:
    p = broker.producer({})
    for _ in range(n):
        p.produce(topic, value=b"v", key=b"k", partition=partition)


def drain(c: EmbeddedConsumer, timeout: float = 0.0) -> list[Any]:
    out: list[Any] = []
    while True:
        batch = c.consume(1000, timeout)
        if not batch:
            return out
        out += batch
        timeout = 0.0


def offsets(messages: list[Any], partition: int) -> list[int]:
    return [m.offset() for m in messages if m.partition() == partition]


def tps(*partitions: int, offset: int = OFFSET_INVALID, topic: str = "t") -> list[TopicPartition]:
    return [TopicPartition(topic, p, offset) for p in partitions]


def code(raised: pytest.ExceptionInfo[KafkaException]) -> int:
    return int(raised.value.args[0].code())


# -- pause / resume ---------------------------------------------------------------------------


def test_a_paused_partition_returns_nothing_and_resumes_where_it_stopped(
    broker: EmbeddedBroker,
) -> None:
    produce(broker, 0, 10)
    produce(broker, 1, 10)
    c = consumer(broker)
    c.subscribe(["t"])
    first = c.consume(4, 1.0)
    assert offsets(first, 0) == [0, 1] and offsets(first, 1) == [0, 1]

    c.pause(tps(0))
    produce(broker, 0, 5)
    while_paused = drain(c)
    assert offsets(while_paused, 0) == [] and offsets(while_paused, 1) == list(range(2, 10))
    assert c.position(tps(0))[0].offset == 2  # nothing skipped meanwhile

    c.resume(tps(0))
    after = drain(c)
    assert offsets(after, 0) == list(range(2, 15)) and offsets(after, 1) == []


def test_a_paused_partition_does_not_wake_consume(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.subscribe(["t"])
    c.consume(1, 0)
    c.pause(c.assignment())
    threading.Timer(0.02, produce, args=(broker, 2, 1)).start()
    started = time.monotonic()
    assert c.consume(10, 0.2) == []
    assert time.monotonic() - started >= 0.15
    c.resume(tps(2))
    assert [m.partition() for m in c.consume(10, 1.0)] == [2]


def test_a_paused_member_stays_in_its_group_and_stays_paused_across_the_rebalance(
    broker: EmbeddedBroker,
) -> None:
    """As librdkafka (checked against Kafka 4.1 with confluent-kafka 2.16): a paused
    partition revoked and assigned back is still paused."""
    produce(broker, 0, 3)
    produce(broker, 3, 3)
    log: list[tuple[str, list[int]]] = []
    c1, c2 = consumer(broker), consumer(broker)

    def on_assign(_c: Any, parts: list[TopicPartition]) -> None:
        log.append(("assign", [tp.partition for tp in parts]))

    def on_revoke(_c: Any, parts: list[TopicPartition]) -> None:
        log.append(("revoke", [tp.partition for tp in parts]))

    c1.subscribe(["t"], on_assign=on_assign, on_revoke=on_revoke)
    c1.consume(1, 0)
    c1.pause(c1.assignment())
    assert c1.consume(10, 0) == []  # paused, but still polling the group

    c2.subscribe(["t"])  # a second member joins: c1 must still rebalance
    assert drain(c1) == []
    assert log == [("assign", [0, 1, 2, 3]), ("revoke", [0, 1, 2, 3]), ("assign", [0, 1])]
    assert {m.partition() for m in drain(c2)} == {3}  # c2's partitions were never paused
    c1.resume(c1.assignment())
    # From the start of partition 0: nothing was committed.
    assert offsets(drain(c1), 0) == [0, 1, 2]


def test_pausing_partitions_not_assigned_is_ignored(broker: EmbeddedBroker) -> None:
    produce(broker, 1, 2)
    c = consumer(broker)
    c.assign(tps(1, offset=OFFSET_BEGINNING))
    c.pause([TopicPartition("t", 3), TopicPartition("other", 0)])
    c.resume([TopicPartition("t", 2)])
    assert offsets(drain(c), 1) == [0, 1]
    with pytest.raises(TypeError):
        c.pause(TopicPartition("t", 1))  # type: ignore[arg-type]


# -- manual assignment ------------------------------------------------------------------------


def test_assign_starts_at_the_given_or_logical_offset(broker: EmbeddedBroker) -> None:
    for p in range(4):
        produce(broker, p, 10)
    committer = consumer(broker, "stored")
    committer.assign(tps(0, offset=OFFSET_BEGINNING))
    committer.commit(offsets=tps(0, 2, offset=7), asynchronous=False)  # no member: allowed
    committer.close()
    assert broker.committed_offsets("stored") == {("t", 0): 7, ("t", 2): 7}

    c = consumer(broker, "stored", {"auto.offset.reset": "latest"})
    c.assign(
        [
            TopicPartition("t", 0, OFFSET_STORED),  # committed: 7
            TopicPartition("t", 1, OFFSET_BEGINNING),
            TopicPartition("t", 2, 4),  # a concrete offset wins over the committed one
            TopicPartition("t", 3, OFFSET_END),
        ]
    )
    assert [tp.partition for tp in c.assignment()] == [0, 1, 2, 3]
    assert [tp.offset for tp in c.position(c.assignment())] == [7, 0, 4, 10]
    got = drain(c)
    assert offsets(got, 0) == [7, 8, 9]
    assert offsets(got, 1) == list(range(10))
    assert offsets(got, 2) == [4, 5, 6, 7, 8, 9]
    assert offsets(got, 3) == []
    produce(broker, 3, 1)
    assert offsets(c.consume(10, 1.0), 3) == [10]


def test_assign_without_committed_offset_or_out_of_range_uses_auto_offset_reset(
    broker: EmbeddedBroker,
) -> None:
    produce(broker, 0, 5)
    early = consumer(broker, "none", {"auto.offset.reset": "earliest"})
    late = consumer(broker, "none", {"auto.offset.reset": "latest"})
    early.assign(tps(0))  # OFFSET_INVALID, the TopicPartition default: as OFFSET_STORED
    late.assign(tps(0))
    assert offsets(drain(early), 0) == [0, 1, 2, 3, 4]
    assert drain(late) == []
    early.assign(tps(0, offset=99))  # beyond the end: out of range
    assert early.position(tps(0))[0].offset == 0


def test_assign_replaces_the_assignment_and_unassign_clears_it(broker: EmbeddedBroker) -> None:
    for p in range(4):
        produce(broker, p, 3)
    c = consumer(broker)
    c.assign(tps(0, 1, offset=OFFSET_BEGINNING))
    assert {m.partition() for m in drain(c)} == {0, 1}
    c.assign(tps(2, offset=1))
    assert [tp.partition for tp in c.assignment()] == [2]
    assert [(m.partition(), m.offset()) for m in drain(c)] == [(2, 1), (2, 2)]
    c.unassign()
    assert c.assignment() == [] and c.consume(10, 0) == []
    c.subscribe(["t"])  # once unassigned, the consumer may subscribe
    assert len(drain(c, 1.0)) == 12


def test_a_consumer_either_subscribes_or_assigns(broker: EmbeddedBroker) -> None:
    manual = consumer(broker)
    manual.assign(tps(0))
    with pytest.raises(KafkaException) as raised:
        manual.subscribe(["t"])
    assert code(raised) == KafkaError._STATE and "assign" in str(raised.value)

    member = consumer(broker)
    member.subscribe(["t"])
    with pytest.raises(KafkaException) as raised:
        member.assign(tps(0))
    assert code(raised) == KafkaError._STATE
    with pytest.raises(KafkaException) as raised:
        member.unassign()
    assert code(raised) == KafkaError._STATE
    with pytest.raises(KafkaException) as raised:
        manual.assign([TopicPartition("t", 1), TopicPartition("t", 1, 5)])
    assert code(raised) == KafkaError._INVALID_ARG


def test_a_manual_consumer_does_not_disturb_the_group(broker: EmbeddedBroker) -> None:
    produce(broker, 0, 4)
    log: list[list[int]] = []
    member = consumer(broker, "app")
    member.subscribe(["t"], on_assign=lambda _c, ps: log.append([tp.partition for tp in ps]))
    member.consume(1, 0)
    restore = consumer(broker, "app", {"enable.auto.commit": True})
    restore.assign(tps(0, 1, offset=OFFSET_BEGINNING))
    assert len(drain(restore)) == 4
    member.consume(1, 0)
    assert log == [[0, 1, 2, 3]]  # no rebalance
    # Kafka rejects commits from outside a group that has members.
    with pytest.raises(KafkaException) as raised:
        restore.commit(offsets=tps(0, offset=4), asynchronous=False)
    assert code(raised) == KafkaError.UNKNOWN_MEMBER_ID
    restore.close()  # its auto-commit fails quietly
    assert broker.committed_offsets("app") == {}


def test_a_consume_blocked_on_a_manual_assignment_sees_a_new_one(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.assign(tps(0))
    got: list[Any] = []
    waiting = threading.Thread(target=lambda: got.extend(c.consume(10, 5.0)))
    waiting.start()
    time.sleep(0.02)
    produce(broker, 3, 1)
    c.assign(tps(3, offset=OFFSET_BEGINNING))
    waiting.join(5.0)
    assert [(m.partition(), m.offset()) for m in got] == [(3, 0)]


def test_assigning_a_missing_partition_reads_nothing(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.assign([TopicPartition("missing", 0), TopicPartition("t", 9)])
    assert len(c.assignment()) == 2 and c.consume(10, 0) == []


# -- watermarks, position, seek ---------------------------------------------------------------


def test_watermarks_follow_appends(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    assert c.get_watermark_offsets(TopicPartition("t", 1)) == (0, 0)
    produce(broker, 1, 5)
    assert c.get_watermark_offsets(TopicPartition("t", 1), timeout=1.0) == (0, 5)
    assert c.get_watermark_offsets(TopicPartition("t", 1), None) == (0, 5)
    # cached: librdkafka has no watermarks for a partition it does not fetch.
    cached = c.get_watermark_offsets(TopicPartition("t", 1), cached=True)
    assert cached == (OFFSET_INVALID, OFFSET_INVALID)
    c.assign(tps(1))
    assert c.get_watermark_offsets(TopicPartition("t", 1), cached=True) == (0, 5)


def test_watermarks_of_an_unknown_partition_raise_as_confluent(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    for tp in (TopicPartition("missing", 0), TopicPartition("t", 4)):
        with pytest.raises(KafkaException) as raised:
            c.get_watermark_offsets(tp)
        assert code(raised) == KafkaError.UNKNOWN_TOPIC_OR_PART
        assert "Failed to get watermark offsets" in raised.value.args[0].str()
        with pytest.raises(KafkaException) as raised:
            c.get_watermark_offsets(tp, cached=True)
        assert code(raised) == KafkaError._UNKNOWN_PARTITION
    c.close()
    with pytest.raises(RuntimeError, match="Consumer closed"):
        c.get_watermark_offsets(TopicPartition("t", 0))


def test_seek_moves_the_position_of_a_manual_assignment(broker: EmbeddedBroker) -> None:
    produce(broker, 0, 10)
    c = consumer(broker)
    c.assign(tps(0, offset=OFFSET_BEGINNING))
    assert offsets(c.consume(3, 0), 0) == [0, 1, 2]
    c.seek(TopicPartition("t", 0, 8))
    assert c.position(tps(0, 1))[0].offset == 8
    assert c.position(tps(0, 1))[1].offset == OFFSET_INVALID
    assert offsets(drain(c), 0) == [8, 9]
    c.seek(TopicPartition("t", 0, OFFSET_BEGINNING))
    assert offsets(drain(c), 0) == list(range(10))
    with pytest.raises(KafkaException):
        c.seek(TopicPartition("t", 1, 0))


def test_consume_leaves_the_gc_switch_as_it_found_it(broker: EmbeddedBroker) -> None:
    produce(broker, 0, 3)
    c = consumer(broker)
    c.assign(tps(0, offset=OFFSET_BEGINNING))
    assert gc.isenabled()
    assert len(c.consume(1, 0)) == 1 and gc.isenabled()
    gc.disable()
    try:
        assert len(c.consume(1, 0)) == 1 and not gc.isenabled()
    finally:
        gc.enable()
