"""The record cache of aggregation stores (Kafka Streams' statestore.cache.max.bytes).

With `commit_every_record=False` the driver only flushes caches on
`driver.commit()` (or when a cache is full), so caching becomes visible: updates
to a key between two commits reach downstream, and the changelog, once, with
the latest value.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from typing import Any

from topicflow import Processor, Produced, Serdes, StreamsBuilder, StreamsConfig
from topicflow.dsl.options import Materialized
from topicflow.dsl.windows import TimeWindow, TimeWindows, Windowed
from topicflow.processor.api import Record
from topicflow.state.manager import CACHE_ENTRY_BYTES
from topicflow.testing import KeyValue, TestOutputTopic, TopologyTestDriver

LONG = Serdes.Long()
STRING = Serdes.String()
CHANGELOG = "cache-app-c-changelog"

Write = tuple[str, bytes | None, bytes | None, int]


def config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id="cache-app",
        default_key_serde=STRING,
        default_value_serde=STRING,
        **overrides,
    )


def spy_writes(driver: TopologyTestDriver) -> list[Write]:
    """Every record the tasks send, internal topics included (the driver hides those)."""
    writes: list[Write] = []
    record = driver._record_output

    def spy(topic: str, key: Any, value: Any, timestamp: int, headers: Any) -> None:
        writes.append((topic, key, value, timestamp))
        record(topic, key, value, timestamp, headers)

    driver._record_output = spy  # type: ignore[method-assign]
    return writes


def counting_driver(
    materialized: Materialized | None = None, commit_every_record: bool = False, **cfg: Any
) -> tuple[TopologyTestDriver, TestOutputTopic[Any, Any], list[Write]]:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count(materialized or Materialized.as_("c"))
        .to_stream()
        .to("out", Produced.with_(STRING, LONG))
    )
    driver = TopologyTestDriver(
        builder.build(), config(**cfg), commit_every_record=commit_every_record
    )
    writes = spy_writes(driver)
    return driver, driver.create_output_topic("out", STRING, LONG), writes


def changelog_of(writes: list[Write]) -> list[tuple[str, int]]:
    return [
        (k.decode(), struct.unpack(">q", v)[0])
        for topic, k, v, _ in writes
        if topic == CHANGELOG and k is not None and v is not None
    ]


def test_default_cache_collapses_updates_until_commit() -> None:
    driver, out, writes = counting_driver()
    with driver:
        source = driver.create_input_topic("in")
        for i in range(100):
            source.pipe_input("k", "v", timestamp=1_000 + i)
        assert out.is_empty()
        assert changelog_of(writes) == []
        # The store answers from its cache meanwhile.
        assert driver.get_key_value_store("c").get("k") == 100
        driver.commit()
        records = out.read_records_to_list()
        assert [(r.key, r.value) for r in records] == [("k", 100)]
        # Forwarded with the timestamp of the last update.
        assert records[0].timestamp == 1_099
        assert changelog_of(writes) == [("k", 100)]
        # A second commit with nothing new forwards nothing.
        driver.commit()
        assert out.is_empty()
        assert changelog_of(writes) == [("k", 100)]


def test_cache_forwards_the_latest_value_of_every_key_at_commit() -> None:
    rng = random.Random(21)
    keys = [f"k{rng.randrange(30)}" for _ in range(1_000)]
    driver, out, writes = counting_driver()
    with driver:
        source = driver.create_input_topic("in")
        expected: Counter[str] = Counter()
        for batch in range(4):
            before = Counter(expected)
            for key in keys[batch * 250 : (batch + 1) * 250]:
                source.pipe_input(key, "v")
                expected[key] += 1
            assert out.is_empty()
            driver.commit()
            got = out.read_key_values_to_list()
            changed = {k: n for k, n in expected.items() if before[k] != n}
            # One record per key updated since the previous commit, with its latest count.
            assert len(got) == len(changed)
            assert dict(got) == changed
        assert dict(changelog_of(writes)) == dict(expected)
        assert len(changelog_of(writes)) < len(keys)


def test_cache_size_zero_forwards_every_update() -> None:
    driver, out, writes = counting_driver(statestore_cache_max_bytes=0)
    with driver:
        source = driver.create_input_topic("in")
        for _ in range(100):
            source.pipe_input("k", "v")
        assert out.read_key_values_to_list() == [KeyValue("k", n) for n in range(1, 101)]
        assert changelog_of(writes) == [("k", n) for n in range(1, 101)]
        driver.commit()
        assert out.is_empty()


def test_caching_disabled_on_the_store_forwards_every_update() -> None:
    driver, out, writes = counting_driver(Materialized.as_("c").with_caching_disabled())
    with driver:
        source = driver.create_input_topic("in")
        for _ in range(50):
            source.pipe_input("k", "v")
        assert out.read_values_to_list() == list(range(1, 51))
        assert len(changelog_of(writes)) == 50


def test_a_full_cache_flushes_before_the_commit() -> None:
    entries = 10
    driver, out, writes = counting_driver(statestore_cache_max_bytes=CACHE_ENTRY_BYTES * entries)
    with driver:
        source = driver.create_input_topic("in")
        keys = [f"k{i:02d}" for i in range(25)]
        for key in keys:
            source.pipe_input(key, "v")
        early = out.read_key_values_to_list()
        # At most `entries` keys can still wait in the cache.
        assert len(early) >= len(keys) - entries
        assert len(early) < len(keys)
        assert all(count == 1 for _, count in early)
        assert len({k for k, _ in early}) == len(early)
        assert [k for k, _ in changelog_of(writes)] == [k for k, _ in early]
        driver.commit()
        rest = out.read_key_values_to_list()
        assert sorted(early + rest) == [KeyValue(k, 1) for k in keys]


def test_a_cache_large_enough_for_the_keys_never_flushes_early() -> None:
    driver, out, _writes = counting_driver(statestore_cache_max_bytes=CACHE_ENTRY_BYTES * 10)
    with driver:
        source = driver.create_input_topic("in")
        for i in range(500):
            source.pipe_input(f"k{i % 10}", "v")
        assert out.is_empty()
        driver.commit()
        assert dict(out.read_key_values_to_list()) == {f"k{i}": 50 for i in range(10)}


def test_commit_every_record_makes_the_cache_invisible() -> None:
    driver, out, writes = counting_driver(commit_every_record=True)
    with driver:
        source = driver.create_input_topic("in")
        for _ in range(20):
            source.pipe_input("k", "v")
        assert out.read_values_to_list() == list(range(1, 21))
        assert [v for _, v in changelog_of(writes)] == list(range(1, 21))


def test_windowed_store_cache_collapses_updates_per_window() -> None:
    builder = StreamsBuilder()
    got: list[tuple[Any, Any]] = []
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(TimeWindows.of_size_with_no_grace(10_000))
        .count(Materialized.as_("c"))
        .to_stream()
        .foreach(lambda k, v: got.append((k, v)))
    )
    with TopologyTestDriver(builder.build(), config(), commit_every_record=False) as driver:
        writes = spy_writes(driver)
        source = driver.create_input_topic("in")
        for i in range(100):
            source.pipe_input("k", "v", timestamp=i * 150)  # windows [0,10000) and [10000,20000)
        assert got == []
        driver.commit()
        assert got == [
            (Windowed("k", TimeWindow(0, 10_000)), 67),
            (Windowed("k", TimeWindow(10_000, 20_000)), 33),
        ]
        changelog = [w for w in writes if w[0] == CHANGELOG]
        # Window changelog keys: key bytes, window start (8 bytes), sequence number (4 bytes).
        assert [(k, v) for _, k, v, _ in changelog] == [
            (b"k" + struct.pack(">qi", 0, 0), struct.pack(">q", 67)),
            (b"k" + struct.pack(">qi", 10_000, 0), struct.pack(">q", 33)),
        ]


def test_downstream_sees_cache_flushes_before_a_processor_flush_in_one_commit() -> None:
    """A commit flushes the store (forwarding) before the downstream sink's batch."""
    flushed: list[list[tuple[str, int]]] = []

    class Batching(Processor[str, int, None, None]):
        def __init__(self) -> None:
            self.batch: list[tuple[str, int]] = []

        def process(self, record: Record[str, int]) -> None:
            self.batch.append((record.key, record.value))

        def flush(self) -> None:
            flushed.append(self.batch)
            self.batch = []

    builder = StreamsBuilder()
    builder.stream("in").group_by_key().count().to_stream().process(Batching)
    with TopologyTestDriver(builder.build(), config(), commit_every_record=False) as driver:
        source = driver.create_input_topic("in")
        for key in "abcab":
            source.pipe_input(key, "v")
        driver.commit()
        # In the order of each key's latest write, as Kafka Streams' NamedCache
        # flushes its dirty keys (a key written again moves to the end).
        assert flushed[-1] == [("c", 1), ("a", 2), ("b", 2)]
