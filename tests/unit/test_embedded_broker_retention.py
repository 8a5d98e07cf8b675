"""The embedded broker's bounded memory: Kafka-like retention and log compaction.

Segments are small here (`segment_records`) so that retention and compaction,
which run as a partition rolls a segment, happen at predictable offsets.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, OFFSET_STORED, TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker, EmbeddedConsumer
from topicflow.errors import ConfigError

COMPACT = {"cleanup.policy": "compact"}


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


def produce(
    broker: EmbeddedBroker,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None]],
    partition: int = 0,
    **kwargs: Any,
) -> None:
    p = broker.producer({})
    for key, value in records:
        p.produce(topic, value=value, key=key, partition=partition, **kwargs)


def numbered(start: int, stop: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(b"k%d" % i, b"v%d" % i) for i in range(start, stop)]


def drain(c: EmbeddedConsumer, timeout: float = 0.0) -> list[Any]:
    out: list[Any] = []
    while True:
        batch = c.consume(1000, timeout)
        if not batch:
            return out
        out += batch
        timeout = 0.0


def retained_offsets(broker: EmbeddedBroker, topic: str, partition: int = 0) -> list[int]:
    return [offset for p, offset, *_ in broker.read_all(topic) if p == partition]


# -- retention (cleanup.policy=delete) --------------------------------------------------------


def test_retention_drops_the_oldest_records_and_keeps_offsets() -> None:
    broker = EmbeddedBroker(retention_records=100)  # segments of 10 records: a tenth
    broker.create_topics([TopicSpec("t", 2)])
    produce(broker, "t", numbered(0, 1000))
    assert broker.retained("t") == [100, 0]
    assert broker.start_offsets("t") == [900, 0] and broker.end_offsets("t") == [1000, 0]
    produce(broker, "t", numbered(1000, 1005))
    assert retained_offsets(broker, "t") == list(range(900, 1005))  # between 100 and 110
    assert [(r[2], r[3]) for r in broker.read_all("t")[:1]] == [(b"k900", b"v900")]
    c = consumer(broker)
    assert c.get_watermark_offsets(TopicPartition("t", 0)) == (900, 1005)
    c.assign([TopicPartition("t", 0, OFFSET_BEGINNING)])
    assert [m.offset() for m in drain(c)] == list(range(900, 1005))


def test_topic_configs_override_the_broker_defaults() -> None:
    broker = EmbeddedBroker(retention_records=1000, segment_records=10)
    broker.create_topics(
        [
            TopicSpec("small", 1, config={"retention.records": "50"}),  # segments of 5
            TopicSpec("unlimited", 1, config={"retention.records": "-1"}),
            TopicSpec("compacted", 1, config={**COMPACT, "retention.records": "10"}),
        ]
    )
    for topic in ("small", "unlimited", "auto"):  # "auto": created by the producer
        produce(broker, topic, numbered(0, 2000))
    produce(broker, "compacted", numbered(0, 2000))
    assert broker.retained("small") == [50]
    assert broker.retained("unlimited") == [2000]
    assert sum(broker.retained("auto")) == 1000 and broker.start_offsets("auto")[0] == 1000
    # Compact only: retention does not apply (unique keys: compaction keeps them all).
    assert broker.retained("compacted") == [2000]


@pytest.mark.parametrize(
    "config",
    [
        {"cleanup.policy": "sometimes"},
        {"cleanup.policy": ""},
        {"retention.records": "0"},
        {"retention.records": "many"},
        {"retention.ms": "-5"},
    ],
)
def test_bad_topic_configs_are_rejected(config: dict[str, str]) -> None:
    broker = EmbeddedBroker()
    with pytest.raises(ConfigError):
        broker.create_topics([TopicSpec("t", 1, config=config)])
    assert broker.topics() == []


def test_unknown_topic_configs_are_ignored() -> None:
    broker = EmbeddedBroker()
    broker.create_topics(
        [TopicSpec("t", 1, config={"cleanup.policy": "Delete , Compact", "segment.bytes": "1"})]
    )
    assert broker.topics() == ["t"]


def test_retention_ms_drops_segments_older_than_it() -> None:
    broker = EmbeddedBroker(retention_records=None, segment_records=10)
    broker.create_topics([TopicSpec("t", 1, config={"retention.ms": "60000"})])
    produce(broker, "t", numbered(0, 20), timestamp=1_000)  # 1970: long expired
    produce(broker, "t", numbered(20, 35))  # now
    assert broker.start_offsets("t") == [20]
    assert retained_offsets(broker, "t") == list(range(20, 35))


@pytest.mark.parametrize(("reset", "expected"), [("earliest", [120, 219]), ("latest", [])])
def test_a_consumer_behind_the_log_start_resets_per_auto_offset_reset(
    reset: str, expected: list[int]
) -> None:
    broker = EmbeddedBroker(retention_records=100)
    broker.create_topics([TopicSpec("t", 1)])
    produce(broker, "t", numbered(0, 20))
    c = consumer(broker, config={"auto.offset.reset": reset})
    c.assign([TopicPartition("t", 0, OFFSET_BEGINNING)])
    assert [m.offset() for m in c.consume(5, 0)] == [0, 1, 2, 3, 4]
    produce(broker, "t", numbered(20, 220))  # meanwhile retention drops 0..119
    got = [m.offset() for m in drain(c)]
    assert got[:1] + got[-1:] == expected and len(got) == len(set(got))
    if reset == "earliest":
        assert got == list(range(120, 220))
    produce(broker, "t", numbered(220, 221))
    assert [m.offset() for m in drain(c)] == [220]


def test_a_committed_offset_dropped_by_retention_resets_on_join() -> None:
    broker = EmbeddedBroker(retention_records=100)
    broker.create_topics([TopicSpec("t", 1)])
    produce(broker, "t", numbered(0, 20))
    first = consumer(broker)
    first.subscribe(["t"])
    first.commit(message=first.consume(5, 1.0)[-1], asynchronous=False)
    first.close()
    produce(broker, "t", numbered(20, 220))
    second = consumer(broker)
    second.subscribe(["t"])
    assert [m.offset() for m in drain(second, 1.0)][:1] == [120]
    restore = consumer(broker, "g")
    restore.assign([TopicPartition("t", 0, OFFSET_STORED)])  # committed 5: out of range
    assert restore.position([TopicPartition("t", 0)])[0].offset == 120


def test_sealed_segments_are_not_walked_by_the_gc() -> None:
    broker = EmbeddedBroker(segment_records=10)
    produce(broker, "t", numbered(0, 25))
    gc.collect()
    log = broker._topics["t"][0]
    assert len(log.segments) == 2
    assert not any(gc.is_tracked(s.keys) or gc.is_tracked(s.values) for s in log.segments)


# -- compaction (cleanup.policy=compact) ------------------------------------------------------


def compacting_broker() -> EmbeddedBroker:
    broker = EmbeddedBroker(segment_records=10, min_compaction_records=10)
    broker.create_topics([TopicSpec("c", 1, config=COMPACT)])
    return broker


def test_compaction_keeps_the_latest_record_per_key_at_its_offset() -> None:
    broker = compacting_broker()
    # Even offsets: one hot key, rewritten; odd offsets: a key each.
    records = [(b"hot" if i % 2 == 0 else b"u%d" % i, b"v%d" % i) for i in range(20)]
    produce(broker, "c", records, headers={"h": b"1"})
    kept = broker.read_all("c")
    assert [r[1] for r in kept] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 18, 19]
    assert all(value == b"v%d" % offset for _, offset, _, value, _, _ in kept)
    assert all(headers == [("h", b"1")] for *_, headers in kept)
    assert broker.start_offsets("c") == [0] and broker.end_offsets("c") == [20]
    produce(broker, "c", [(b"hot", b"v20")])  # the active segment is not compacted yet
    assert retained_offsets(broker, "c")[-3:] == [18, 19, 20]


def test_fetching_from_a_gap_continues_at_the_next_retained_offset() -> None:
    broker = compacting_broker()
    produce(broker, "c", [(b"hot" if i % 2 == 0 else b"u%d" % i, b"v") for i in range(20)])
    c = consumer(broker)
    c.assign([TopicPartition("c", 0, 2)])  # 2 was compacted away
    assert [m.offset() for m in c.consume(1, 0)] == [3]
    assert [m.offset() for m in c.consume(3, 0)] == [5, 7, 9]
    c.seek(TopicPartition("c", 0, 16))
    assert [m.offset() for m in drain(c)] == [17, 18, 19]
    assert c.position([TopicPartition("c", 0)])[0].offset == 20


def test_a_tombstone_is_kept_by_one_compaction_and_dropped_by_the_next() -> None:
    broker = compacting_broker()
    fillers = [(b"f%d" % i, b"v") for i in range(8)]
    produce(broker, "c", [(b"x", b"1"), (b"x", None), *fillers])  # offsets 0..9: a roll
    assert retained_offsets(broker, "c") == list(range(1, 10))  # the tombstone stays
    assert broker.read_all("c")[0][2:4] == (b"x", None)
    produce(broker, "c", [(b"g%d" % i, b"v") for i in range(10)])  # offsets 10..19
    assert retained_offsets(broker, "c") == list(range(2, 20))


def test_a_record_without_key_is_rejected_by_a_compacted_topic() -> None:
    broker = compacting_broker()
    reports: list[tuple[Any, Any]] = []
    p = broker.producer({})
    p.produce("c", value=b"v", on_delivery=lambda e, m: reports.append((e, m)))
    p.produce("c", value=b"v", key=b"k", on_delivery=lambda e, m: reports.append((e, m)))
    p.flush()
    (error, failed), (ok, delivered) = reports
    assert error.code() == KafkaError.INVALID_RECORD and "without key" in error.str()
    assert failed.error() is error and failed.partition() == 0
    assert ok is None and delivered.offset() == 0
    assert broker.end_offsets("c") == [1]


def test_compact_and_delete_together() -> None:
    broker = EmbeddedBroker(segment_records=10, min_compaction_records=10)
    policy = {"cleanup.policy": "compact,delete", "retention.records": "100"}
    broker.create_topics([TopicSpec("cd", 1, config=policy)])
    produce(broker, "cd", [(b"k%d" % (i % 50), b"v%d" % i) for i in range(300)])
    kept = broker.read_all("cd")
    assert {key: value for _, _, key, value, _, _ in kept} == {
        b"k%d" % (i % 50): b"v%d" % i for i in range(250, 300)
    }
    assert all(value == b"v%d" % offset for _, offset, _, value, _, _ in kept)
    assert broker.retained("cd")[0] <= 110
    produce(broker, "cd", numbered(1000, 1300))  # unique keys: retention bounds it
    assert 100 <= broker.retained("cd")[0] <= 110
    assert retained_offsets(broker, "cd")[-1] == 599


def test_a_restore_loop_reads_exactly_the_compacted_state() -> None:
    broker = EmbeddedBroker(segment_records=10, min_compaction_records=10)
    broker.create_topics([TopicSpec("changelog", 4, config=COMPACT)])
    p = broker.producer({})
    expected: dict[bytes, bytes] = {}
    for i in range(2000):
        key = b"key-%d" % (i % 37)
        value = None if i % 7 == 0 else b"value-%d" % i
        p.produce("changelog", value=value, key=key)
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    assert sum(broker.retained("changelog")) < 400  # 2000 produced

    # As the runtime restores a store: assign, read the high watermarks, consume to them.
    restore = consumer(broker, "app")
    partitions = [TopicPartition("changelog", q, OFFSET_BEGINNING) for q in range(4)]
    restore.assign(partitions)
    highs = {q: restore.get_watermark_offsets(TopicPartition("changelog", q))[1] for q in range(4)}
    state: dict[bytes, bytes] = {}
    read = 0
    deadline = time.monotonic() + 5
    while any(tp.offset < highs[tp.partition] for tp in restore.position(partitions)):
        assert time.monotonic() < deadline
        for m in restore.consume(10000, 0.1):
            key, value = m.key(), m.value()
            assert key is not None
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
            read += 1
    assert state == expected
    assert read == sum(broker.retained("changelog"))
    restore.close()


@pytest.mark.parametrize("seed", range(5))
def test_compaction_never_changes_the_state_a_reader_rebuilds(seed: int) -> None:
    """Random keys, values and tombstones against a model: the state is the same."""
    rng = random.Random(seed)
    broker = EmbeddedBroker(segment_records=rng.choice([3, 7, 16]), min_compaction_records=5)
    broker.create_topics([TopicSpec("c", 1, config=COMPACT)])
    p = broker.producer({})
    produced: list[tuple[bytes, bytes | None]] = []
    model: dict[bytes, bytes] = {}
    for _ in range(12):
        for _ in range(rng.randrange(1, 80)):
            key = b"k%d" % rng.randrange(rng.choice([3, 20, 200]))
            value = None if rng.random() < 0.15 else b"v%d" % len(produced)
            p.produce("c", value=value, key=key, partition=0)
            produced.append((key, value))
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
        kept = broker.read_all("c")
        offsets = [r[1] for r in kept]
        assert offsets == sorted(set(offsets)) and broker.end_offsets("c") == [len(produced)]
        assert all(produced[offset] == (k, v) for _, offset, k, v, _, _ in kept)
        state: dict[bytes, bytes] = {}
        for _, _, k, v, _, _ in kept:
            assert k is not None
            if v is None:
                state.pop(k, None)
            else:
                state[k] = v
        assert state == model
        # A consumer reading in small steps sees exactly the retained records.
        c = consumer(broker)
        c.assign([TopicPartition("c", 0, OFFSET_BEGINNING)])
        read: list[int] = []
        while batch := c.consume(rng.randrange(1, 9), 0):
            read += [m.offset() for m in batch]
        assert read == offsets
        c.close()
