"""The embedded broker behaves like confluent-kafka on Kafka for the subset topicflow uses."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    TIMESTAMP_CREATE_TIME,
    TopicSpec,
)
from topicflow.brokers.embedded import EmbeddedBroker, EmbeddedConsumer, default_broker
from topicflow.brokers.embedded.group import range_assign
from topicflow.brokers.partitioner import partition_for_key
from topicflow.errors import ConfigError


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


class Recorder:
    """Rebalance callbacks that log (name, event, partitions)."""

    def __init__(self, log: list[tuple[str, str, list[int]]], name: str) -> None:
        self.log, self.name = log, name

    def on_assign(self, _c: Any, partitions: list[TopicPartition]) -> None:
        self.log.append((self.name, "assign", [tp.partition for tp in partitions]))

    def on_revoke(self, _c: Any, partitions: list[TopicPartition]) -> None:
        self.log.append((self.name, "revoke", [tp.partition for tp in partitions]))


def join(c: EmbeddedConsumer, log: list[tuple[str, str, list[int]]], name: str) -> None:
    r = Recorder(log, name)
    c.subscribe(["t"], on_assign=r.on_assign, on_revoke=r.on_revoke)


def drain(c: EmbeddedConsumer, timeout: float = 0.0) -> list[Any]:
    """Everything available now (after any pending rebalance callbacks)."""
    out: list[Any] = []
    while True:
        batch = c.consume(1000, timeout)
        if not batch:
            return out
        out += batch
        timeout = 0.0


def assigned(c: EmbeddedConsumer) -> list[int]:
    return [tp.partition for tp in c.assignment()]


def produce_n(broker: EmbeddedBroker, n: int, topic: str = "t") -> None:
    p = broker.producer({})
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, key=b"k%d" % i)


# -- producing and the log --------------------------------------------------------------------


def test_round_trip_keeps_key_value_timestamp_and_headers(broker: EmbeddedBroker) -> None:
    p = broker.producer({})
    p.produce("t", value=b"v1", key=b"k1", partition=2, timestamp=1_700_000_000_123)
    p.produce("t", b"v2", None, 2, headers=[("h", b"x"), ("n", None)])
    p.produce("t", value="text", key="key", partition=2, headers={"s": "str"})
    before = time.time_ns() // 1_000_000
    p.produce("t", value=None, key=b"k4", partition=2)
    c = consumer(broker)
    c.subscribe(["t"])
    m1, m2, m3, m4 = drain(c, 1.0)
    assert (m1.topic(), m1.partition(), m1.offset(), m1.key(), m1.value()) == (
        "t",
        2,
        0,
        b"k1",
        b"v1",
    )
    assert m1.timestamp() == (TIMESTAMP_CREATE_TIME, 1_700_000_000_123)
    assert m1.headers() is None and m1.error() is None and len(m1) == 2
    assert m2.offset() == 1 and m2.key() is None
    assert m2.headers() == [("h", b"x"), ("n", None)]
    assert (m3.key(), m3.value(), m3.headers()) == (b"key", b"text", [("s", b"str")])
    assert m4.value() is None and len(m4) == 0
    assert before <= m4.timestamp()[1] <= time.time_ns() // 1_000_000
    assert broker.end_offsets("t") == [0, 0, 4, 0]
    assert broker.read_all("t")[0] == (2, 0, b"k1", b"v1", 1_700_000_000_123, None)


def test_keyed_records_land_on_the_murmur2_partition(broker: EmbeddedBroker) -> None:
    p = broker.producer({})
    keys = [b"user-%d" % i for i in range(1, 101)]
    for key in keys:
        p.produce("t", value=b"x", key=key)
    placed = {key: part for part, _, key, _, _, _ in broker.read_all("t")}
    assert placed == {key: partition_for_key(key, 4) for key in keys}
    assert placed[b"user-3"] == 3 and placed[b"user-6"] == 1  # Java-derived, see test_partitioner


def test_records_without_key_spread_over_partitions(broker: EmbeddedBroker) -> None:
    """At random, as librdkafka's murmur2_random partitioner does."""
    produce_n_unkeyed = broker.producer({})
    for _ in range(400):
        produce_n_unkeyed.produce("t", value=b"x")
    counts = broker.end_offsets("t")
    assert sum(counts) == 400 and all(50 <= c <= 150 for c in counts)


def test_unknown_partition_is_a_delivery_error_not_an_exception(broker: EmbeddedBroker) -> None:
    reports: list[tuple[Any, Any]] = []
    p = broker.producer({"delivery.report.only.error": True})
    p.produce("t", value=b"x", partition=4, on_delivery=lambda e, m: reports.append((e, m)))
    assert reports == [] and len(p) == 1
    assert p.flush() == 0
    [(err, msg)] = reports
    assert err.code() == KafkaError._UNKNOWN_PARTITION and "Unknown partition" in err.str()
    assert msg.error() is err and (msg.topic(), msg.partition(), msg.value()) == ("t", 4, b"x")
    assert broker.end_offsets("t") == [0, 0, 0, 0]


def test_delivery_callbacks_run_only_from_poll_and_flush(broker: EmbeddedBroker) -> None:
    reports: list[tuple[Any, int, int]] = []

    def report(err: Any, msg: Any) -> None:
        reports.append((err, msg.partition(), msg.offset()))

    p = broker.producer({})
    p.produce("t", value=b"a", partition=1, on_delivery=report)
    p.produce("t", value=b"b", partition=1, callback=report)  # confluent's alias
    p.produce("t", value=b"c", partition=1)  # no callback: nothing to report
    assert reports == [] and len(p) == 2
    assert p.poll(0) == 2
    assert reports == [(None, 1, 0), (None, 1, 1)] and len(p) == 0
    p.produce("t", value=b"d", partition=0, on_delivery=report)
    assert p.flush(1.0) == 0 and reports[-1] == (None, 0, 0)

    quiet = broker.producer({"delivery.report.only.error": "true", "on_delivery": report})
    quiet.produce("t", value=b"e")
    assert len(quiet) == 0 and quiet.poll(0) == 0 and len(reports) == 3


def test_poll_waits_for_a_report_from_another_thread(broker: EmbeddedBroker) -> None:
    reports: list[Any] = []
    p = broker.producer({"on_delivery": lambda e, m: reports.append(m)})
    producing = threading.Thread(target=p.produce, args=("t", b"x"))
    started = time.monotonic()
    threading.Timer(0.05, producing.start).start()
    assert p.poll(5.0) == 1
    assert time.monotonic() - started < 2.0 and len(reports) == 1


def test_topics_auto_create_on_produce_and_admin(broker: EmbeddedBroker) -> None:
    admin = broker.admin()
    broker.producer({}).produce("auto", value=b"x")
    admin.create_topics([TopicSpec("t", 12), TopicSpec("six", 6)], timeout=1.0)
    assert admin.partition_counts(["t", "auto", "six", "missing"], 1.0) == {
        "t": 4,  # existing topics are left alone
        "auto": 4,
        "six": 6,
    }
    admin.delete_topics(["auto", "missing"], 1.0)
    assert admin.partition_counts(["auto"], 1.0) == {}
    assert broker.read_all("auto") == [] and broker.end_offsets("auto") == []
    with pytest.raises(ConfigError):
        admin.create_topics([TopicSpec("bad name", 1)], 1.0)
    broker.check_reachable(0.1)


def test_default_broker_is_a_process_wide_singleton() -> None:
    assert default_broker() is default_broker()
    assert default_broker().name == "embedded"


# -- consumer groups --------------------------------------------------------------------------


def test_range_assignor_matches_kafka() -> None:
    subs = {"m1": ["a", "b"], "m2": ["a", "b"], "m3": ["a"]}
    got = range_assign(subs, {"a": 5, "b": 4})
    assert got == {
        "m1": [("a", 0), ("a", 1), ("b", 0), ("b", 1)],
        "m2": [("a", 2), ("a", 3), ("b", 2), ("b", 3)],
        "m3": [("a", 4)],
    }
    # Co-partitioned topics: each member gets the same partition numbers of both.
    got = range_assign({"x": ["a", "b"], "y": ["a", "b"], "z": ["a", "b"]}, {"a": 4, "b": 4})
    for parts in got.values():
        assert sorted(p for t, p in parts if t == "a") == sorted(p for t, p in parts if t == "b")
    assert range_assign({"m": ["missing"]}, {}) == {"m": []}


def test_two_members_split_the_topic_and_read_each_record_once(broker: EmbeddedBroker) -> None:
    produce_n(broker, 200)
    c1, c2 = consumer(broker), consumer(broker)
    log: list[tuple[str, str, list[int]]] = []
    join(c1, log, "c1")
    join(c2, log, "c2")
    got = drain(c1) + drain(c2)
    assert (assigned(c1), assigned(c2)) == ([0, 1], [2, 3])
    assert sorted(m.value() for m in got) == sorted(b"v%d" % i for i in range(200))
    assert {m.partition() for m in drain(c1)} <= {0, 1}


def test_a_joining_member_waits_until_the_others_revoked(broker: EmbeddedBroker) -> None:
    log: list[tuple[str, str, list[int]]] = []
    c1, c2, c3 = consumer(broker), consumer(broker), consumer(broker)
    join(c1, log, "c1")
    join(c2, log, "c2")
    c1.consume(1, 0)
    c2.consume(1, 0)
    assert log == [("c1", "assign", [0, 1]), ("c2", "assign", [2, 3])]
    log.clear()

    join(c3, log, "c3")
    assert c3.consume(1, 0) == [] and log == []  # c1 and c2 still own everything
    assert c1.consume(1, 0.01) == []  # c1 revokes, then waits for c2
    assert log == [("c1", "revoke", [0, 1])]
    c2.consume(1, 0)  # c2 revokes; the generation completes; c2 takes its share
    c1.consume(1, 0)
    c3.consume(1, 0)
    assert log == [
        ("c1", "revoke", [0, 1]),
        ("c2", "revoke", [2, 3]),
        ("c2", "assign", [2]),
        ("c1", "assign", [0, 1]),
        ("c3", "assign", [3]),
    ]


def test_revocation_finishes_before_the_partitions_move(broker: EmbeddedBroker) -> None:
    c1, c2 = consumer(broker), consumer(broker)
    in_revoke, release = threading.Event(), threading.Event()
    assigned_to_c2: list[list[int]] = []

    def slow_revoke(_c: Any, _parts: list[TopicPartition]) -> None:
        in_revoke.set()
        assert release.wait(5.0)

    c1.subscribe(["t"], on_revoke=slow_revoke)
    c1.consume(1, 0)
    c2.subscribe(["t"], on_assign=lambda _c, ps: assigned_to_c2.append([p.partition for p in ps]))
    revoking = threading.Thread(target=c1.consume, args=(1, 0.01))
    revoking.start()
    assert in_revoke.wait(5.0)
    assert c2.consume(1, 0.05) == [] and assigned_to_c2 == []  # c1 is still revoking
    release.set()
    revoking.join(5.0)
    c2.consume(1, 0)
    assert assigned_to_c2 == [[2, 3]]


def test_a_new_member_resumes_from_the_committed_offset(broker: EmbeddedBroker) -> None:
    p = broker.producer({})
    for i in range(10):
        p.produce("t", value=b"%d" % i, partition=0)
    c1 = consumer(broker)
    c1.subscribe(["t"])
    first = c1.consume(4, 1.0)
    assert [m.offset() for m in first] == [0, 1, 2, 3]
    assert c1.committed([TopicPartition("t", 0)])[0].offset == OFFSET_INVALID
    done = c1.commit(message=first[-1], asynchronous=False)
    assert done is not None and [(tp.partition, tp.offset) for tp in done] == [(0, 4)]
    c1.close()

    c2 = consumer(broker)
    c2.subscribe(["t"])
    assert [m.offset() for m in drain(c2, 1.0)] == list(range(4, 10))
    assert broker.committed_offsets("g") == {("t", 0): 4}


def test_auto_offset_reset_earliest_and_latest(broker: EmbeddedBroker) -> None:
    produce_n(broker, 8)
    early = consumer(broker, "early", {"auto.offset.reset": "earliest"})
    late = consumer(broker, "late", {"auto.offset.reset": "latest"})
    early.subscribe(["t"])
    late.subscribe(["t"])
    assert len(drain(early, 1.0)) == 8
    assert drain(late, 0.01) == []
    broker.producer({}).produce("t", value=b"new")
    assert [m.value() for m in drain(late, 1.0)] == [b"new"]
    with pytest.raises(ConfigError):
        consumer(broker, config={"auto.offset.reset": "sometimes"})
    with pytest.raises(ValueError, match=r"group\.id"):
        broker.consumer({})


def test_close_revokes_and_hands_partitions_to_the_others(broker: EmbeddedBroker) -> None:
    log: list[tuple[str, str, list[int]]] = []
    c1, c2 = consumer(broker), consumer(broker)
    join(c1, log, "c1")
    join(c2, log, "c2")
    c1.consume(1, 0)
    c2.consume(1, 0)
    log.clear()
    c1.close()
    assert log == [("c1", "revoke", [0, 1])]
    c2.consume(1, 0)
    assert log[1:] == [("c2", "revoke", [2, 3]), ("c2", "assign", [0, 1, 2, 3])]
    c1.close()  # idempotent, as confluent's
    with pytest.raises(RuntimeError, match="Consumer closed"):
        c1.consume(1, 0)


def test_committing_a_partition_not_owned_raises(broker: EmbeddedBroker) -> None:
    c1, c2 = consumer(broker), consumer(broker)
    committed_in_revoke: list[Any] = []

    def commit_on_revoke(c: Any, parts: list[TopicPartition]) -> None:
        offsets = [TopicPartition(tp.topic, tp.partition, 1) for tp in parts]
        committed_in_revoke.append(c.commit(offsets=offsets, asynchronous=False))

    c1.subscribe(["t"], on_revoke=commit_on_revoke)
    c1.consume(1, 0)
    c2.subscribe(["t"])
    c1.consume(1, 0)  # revokes (committing from on_revoke is allowed), then waits for nothing
    assert len(committed_in_revoke) == 1 and len(committed_in_revoke[0]) == 4
    assert assigned(c1) == [0, 1]
    with pytest.raises(KafkaException) as raised:
        c1.commit(offsets=[TopicPartition("t", 3, 5)], asynchronous=False)
    assert raised.value.args[0].code() == KafkaError.ILLEGAL_GENERATION
    # Asynchronous commits report to on_commit instead, as librdkafka's.
    results: list[tuple[Any, Any]] = []
    c3 = consumer(broker, config={"on_commit": lambda err, parts: results.append((err, parts))})
    c3.commit(offsets=[TopicPartition("t", 3, 5)])
    c3.consume(1, 0)
    assert results[0][0].code() == KafkaError.UNKNOWN_MEMBER_ID


def test_commit_without_arguments_commits_stored_offsets(broker: EmbeddedBroker) -> None:
    produce_n(broker, 20)
    c = consumer(broker, config={"enable.auto.offset.store": False})
    c.subscribe(["t"])
    got = drain(c, 1.0)
    with pytest.raises(KafkaException) as raised:
        c.commit(asynchronous=False)  # nothing stored
    assert raised.value.args[0].code() == KafkaError._NO_OFFSET
    c.store_offsets(message=got[0])
    done = c.commit(asynchronous=False)
    assert done is not None
    assert [(tp.partition, tp.offset) for tp in done] == [(got[0].partition(), got[0].offset() + 1)]


def test_auto_commit_on_close(broker: EmbeddedBroker) -> None:
    produce_n(broker, 20)
    c = consumer(broker, config={"enable.auto.commit": True})
    c.subscribe(["t"])
    assert len(drain(c, 1.0)) == 20
    c.close()
    assert sum(broker.committed_offsets("g").values()) == 20


def test_assign_inside_on_assign_sets_the_start_offsets(broker: EmbeddedBroker) -> None:
    produce_n(broker, 20)
    c = consumer(broker, config={"auto.offset.reset": "latest"})

    def from_beginning(cons: Any, parts: list[TopicPartition]) -> None:
        for tp in parts:
            tp.offset = OFFSET_BEGINNING
        cons.assign(parts)

    c.subscribe(["t"], on_assign=from_beginning)
    assert len(drain(c, 1.0)) == 20


def test_subscribing_to_a_missing_topic_assigns_it_once_created(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.subscribe(["later"])
    assert c.consume(1, 0) == [] and c.assignment() == []
    broker.producer({}).produce("later", value=b"x", partition=3)
    assert [m.value() for m in c.consume(10, 1.0)] == [b"x"]
    assert len(c.assignment()) == 4


def test_consume_is_fair_across_partitions(broker: EmbeddedBroker) -> None:
    p = broker.producer({})
    for part in range(4):
        for _ in range(100):
            p.produce("t", value=b"x", partition=part)
    c = consumer(broker)
    c.subscribe(["t"])
    assert Counter(m.partition() for m in c.consume(8, 1.0)) == {0: 2, 1: 2, 2: 2, 3: 2}
    # A lone message per call still rotates over the partitions.
    assert {c.consume(1, 0)[0].partition() for _ in range(4)} == {0, 1, 2, 3}


def test_consume_wakes_when_a_record_arrives(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.subscribe(["t"])
    c.consume(1, 0)  # take the assignment
    threading.Timer(0.05, lambda: broker.producer({}).produce("t", value=b"x")).start()
    started = time.monotonic()
    assert len(c.consume(10, 5.0)) == 1
    assert time.monotonic() - started < 2.0


def test_one_producer_and_two_consumer_threads(broker: EmbeddedBroker) -> None:
    total = 5000
    seen: list[list[bytes]] = [[], []]
    progress = threading.Condition()
    stop = threading.Event()
    errors: list[BaseException] = []

    # Both join before either consumes, so each gets two partitions from the start.
    members = [consumer(broker), consumer(broker)]
    for c in members:
        c.subscribe(["t"])

    def consume(index: int) -> None:
        try:
            c = members[index]
            while not stop.is_set():
                batch = c.consume(100, 0.02)
                if batch:
                    c.commit(asynchronous=False)  # before any revoke: exactly once
                    with progress:
                        seen[index].extend(m.value() or b"" for m in batch)
                        progress.notify()
            c.close()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
            with progress:
                progress.notify()

    def produce() -> None:
        p = broker.producer({})
        for i in range(total):
            p.produce("t", value=b"%d" % i, key=b"key-%d" % (i % 50))

    threads = [threading.Thread(target=consume, args=(i,)) for i in (0, 1)]
    threads.append(threading.Thread(target=produce))
    for t in threads:
        t.start()
    with progress:
        progress.wait_for(lambda: errors or len(seen[0]) + len(seen[1]) >= total, timeout=10)
    stop.set()
    for t in threads:
        t.join(5.0)
    assert not errors
    assert sorted(seen[0] + seen[1]) == sorted(b"%d" % i for i in range(total))
    assert seen[0] and seen[1]  # both took part


def test_deleting_and_recreating_a_topic_starts_it_afresh(broker: EmbeddedBroker) -> None:
    produce_n(broker, 8)
    c = consumer(broker)
    c.subscribe(["t"])
    assert len(drain(c, 1.0)) == 8
    c.commit(asynchronous=False)
    broker.delete_topics(["t"])
    assert c.consume(10, 0) == [] and c.assignment() == []
    assert broker.committed_offsets("g") == {}
    broker.create_topics([TopicSpec("t", 2)])
    broker.producer({}).produce("t", value=b"again", partition=1)
    assert [m.value() for m in drain(c, 1.0)] == [b"again"]
    assert assigned(c) == [0, 1]


def test_unsubscribe_leaves_the_group(broker: EmbeddedBroker) -> None:
    log: list[tuple[str, str, list[int]]] = []
    c1, c2 = consumer(broker), consumer(broker)
    join(c1, log, "c1")
    join(c2, log, "c2")
    c1.consume(1, 0)
    c2.consume(1, 0)
    c2.unsubscribe()
    assert c2.assignment() == [] and c2.memberid() is None
    c1.consume(1, 0)
    assert log[-2:] == [("c1", "revoke", [0, 1]), ("c1", "assign", [0, 1, 2, 3])]
    assert c2.consume(1, 0) == []


def test_close_from_another_thread_ends_a_blocked_consume(broker: EmbeddedBroker) -> None:
    c = consumer(broker)
    c.subscribe(["t"])
    c.consume(1, 0)
    raised: list[BaseException] = []

    def blocked() -> None:
        try:
            c.consume(1, -1)
        except RuntimeError as exc:
            raised.append(exc)

    t = threading.Thread(target=blocked)
    t.start()
    c.close()
    t.join(5.0)
    assert not t.is_alive() and len(raised) == 1
