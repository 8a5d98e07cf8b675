"""Windowed aggregations: tumbling and hopping windows, grace, retention, suppress.

Expectations come from a brute-force reference written here: every window is
`[start, start + size)` with `start` a non-negative multiple of the advance, and a
record is late for a window when `window end <= stream time - grace` (Kafka
Streams' rule), stream time being the largest timestamp seen so far, the
record's own included.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from topicflow import Processor, Serdes, StreamsBuilder, StreamsConfig, TopologyError
from topicflow.dsl.options import Materialized, Suppressed
from topicflow.dsl.windows import TimeWindow, TimeWindows, Windowed
from topicflow.processor.api import Record
from topicflow.testing import TopologyTestDriver

SIZE = 10_000
DAY = 24 * 3600 * 1000

Out = tuple[Any, Any, int]


class Collect(Processor[Any, Any, None, None]):
    """Appends (key, value, timestamp) of every record it gets."""

    def __init__(self, sink: list[Out]) -> None:
        self.sink = sink

    def process(self, record: Record[Any, Any]) -> None:
        self.sink.append((record.key, record.value, record.timestamp))


def config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id="win-app",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **overrides,
    )


def windowed_count(
    windows: TimeWindows,
    materialized: Materialized | None = None,
    suppress: bool = False,
    **driver_args: Any,
) -> tuple[TopologyTestDriver, list[Out]]:
    """A driver running in -> group_by_key -> windowed count (store "w") -> collected output."""
    got: list[Out] = []
    builder = StreamsBuilder()
    table = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(windows)
        .count(materialized or Materialized.as_("w"))
    )
    if suppress:
        table = table.suppress(Suppressed.until_window_closes())
    table.to_stream().process(lambda: Collect(got))
    return TopologyTestDriver(builder.build(), config(), **driver_args), got


def pipe(driver: TopologyTestDriver, records: list[tuple[str, int]]) -> None:
    source = driver.create_input_topic("in")
    for key, timestamp in records:
        source.pipe_input(key, "x", timestamp=timestamp)


def w(key: str, start: int, size: int = SIZE) -> Windowed[str]:
    return Windowed(key, TimeWindow(start, start + size))


def store_counts(driver: TopologyTestDriver, name: str = "w") -> dict[tuple[str, int], int]:
    return {(key, start): value for key, start, value in driver.get_window_store(name).all()}


def latest(got: list[Out]) -> dict[tuple[str, int], int]:
    return {(k.key, k.window.start): v for k, v, _ in got}


# -- the reference ----------------------------------------------------------------------------


def reference_starts(timestamp: int, size: int, advance: int) -> list[int]:
    """Every window holding `timestamp`, by scanning all starts from the epoch."""
    return [s for s in range(0, timestamp + 1, advance) if s <= timestamp < s + size]


def reference(
    records: list[tuple[str, int]], size: int, advance: int, grace: int
) -> tuple[Counter[tuple[str, int]], int]:
    """Counts per (key, window start) of the records not late, and the number of late records."""
    counts: Counter[tuple[str, int]] = Counter()
    late = 0
    stream_time = -1
    for key, timestamp in records:
        stream_time = max(stream_time, timestamp)
        accepted = [
            s for s in reference_starts(timestamp, size, advance) if s + size > stream_time - grace
        ]
        if not accepted:
            late += 1
        for s in accepted:
            counts[key, s] += 1
    return counts, late


def disordered(seed: int, n: int, keys: int, step: int, jitter: int) -> list[tuple[str, int]]:
    """Records at increasing times, each moved back by up to `jitter` ms."""
    rng = random.Random(seed)
    records = []
    t = rng.randrange(SIZE)
    for _ in range(n):
        t += rng.randrange(step)
        records.append((f"k{rng.randrange(keys)}", max(0, t - rng.randrange(jitter + 1))))
    return records


def test_reference_sanity() -> None:
    assert reference_starts(9999, 10_000, 10_000) == [0]
    assert reference_starts(10_000, 10_000, 10_000) == [10_000]
    assert reference_starts(12_000, 10_000, 5_000) == [5_000, 10_000]
    assert reference_starts(3_000, 10_000, 5_000) == [0]
    assert reference_starts(20, 10, 3) == [12, 15, 18]
    counts, late = reference([("a", 15), ("a", 4)], 10, 10, 0)
    assert counts == Counter({("a", 10): 1}) and late == 1


# -- tumbling windows -----------------------------------------------------------------------------


def test_tumbling_windows_are_epoch_aligned_start_inclusive_end_exclusive() -> None:
    driver, got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE))
    with driver:
        pipe(driver, [("a", 12_345), ("a", 19_999), ("a", 20_000), ("a", 29_999), ("b", 30_000)])
        assert [(k, v) for k, v, _ in got] == [
            (w("a", 10_000), 1),
            (w("a", 10_000), 2),
            (w("a", 20_000), 1),
            (w("a", 20_000), 2),
            (w("b", 30_000), 1),
        ]


def test_boundaries_9999_and_10000_fall_in_different_windows() -> None:
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, DAY))
    with driver:
        pipe(driver, [("k", 0), ("k", 9_999), ("k", 10_000)])
        assert store_counts(driver) == {("k", 0): 2, ("k", 10_000): 1}
        assert got[-1][0] == Windowed("k", TimeWindow(10_000, 20_000))
        assert got[-1][0].window.end == 20_000


def test_windowed_keys_and_output_timestamps() -> None:
    driver, got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE))
    with driver:
        pipe(driver, [("user", 1_234), ("user", 5_678)])
        assert got == [(w("user", 0), 1, 1_234), (w("user", 0), 2, 5_678)]
        key = got[0][0]
        assert isinstance(key, Windowed) and isinstance(key.window, TimeWindow)
        assert (key.key, key.window.start, key.window.end) == ("user", 0, SIZE)
        assert str(key) == "[user@0/10000]"


def test_tumbling_counts_match_brute_force() -> None:
    records = disordered(seed=11, n=800, keys=6, step=400, jitter=9_000)
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, 5_000))
    with driver:
        pipe(driver, records)
        expected, late = reference(records, SIZE, SIZE, 5_000)
        assert late > 0  # the input exercises lateness
        assert store_counts(driver) == dict(expected)
        assert latest(got) == dict(expected)
        assert driver.metrics.late_records == late


# -- hopping windows -------------------------------------------------------------------------------


def test_hopping_record_lands_in_every_window_holding_it() -> None:
    windows = TimeWindows.of_size_with_no_grace(SIZE).advance_by(5_000)
    driver, got = windowed_count(windows)
    with driver:
        pipe(driver, [("k", 3_000), ("k", 12_000)])
        # 3000: only [0, 10000), since windows never start before the epoch.
        assert [(k, v) for k, v, _ in got] == [
            (w("k", 0), 1),
            (w("k", 5_000), 1),
            (w("k", 10_000), 1),
        ]


@pytest.mark.parametrize(
    ("size", "advance"),
    [(10_000, 5_000), (10_000, 2_500), (10_000, 1_000), (10_000, 10_000), (6_000, 2_000)],
)
def test_hopping_counts_match_brute_force(size: int, advance: int) -> None:
    records = disordered(seed=size + advance, n=600, keys=5, step=300, jitter=2_000)
    windows = TimeWindows.of_size_and_grace(size, DAY).advance_by(advance)
    driver, got = windowed_count(windows)
    with driver:
        pipe(driver, records)
        expected, late = reference(records, size, advance, DAY)
        assert late == 0
        assert store_counts(driver) == dict(expected)
        assert latest(got) == dict(expected)
        # Each record lands in size / advance windows (fewer near the epoch).
        assert sum(expected.values()) <= len(records) * (size // advance)


def test_hopping_with_an_advance_that_does_not_divide_the_size() -> None:
    windows = TimeWindows.of_size_with_no_grace(SIZE).advance_by(3_000)
    assert windows.windows_for(20_000) == reference_starts(20_000, SIZE, 3_000)
    driver, _got = windowed_count(windows)
    with driver:
        pipe(driver, [("k", 9_000), ("k", 20_000)])
        starts = sorted(start for _, start in store_counts(driver))
        assert starts == [0, 3_000, 6_000, 9_000, 12_000, 15_000, 18_000]


# -- grace and late records ------------------------------------------------------------------------


def test_record_behind_stream_time_within_grace_is_counted() -> None:
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, 2_000))
    with driver:
        # Stream time 11999: close time 9999 < end 10000, window [0, 10000) still open.
        pipe(driver, [("k", 5_000), ("k", 11_999), ("k", 9_000)])
        assert store_counts(driver) == {("k", 0): 2, ("k", 10_000): 1}
        assert got[-1][:2] == (w("k", 0), 2)
        assert driver.metrics.late_records == 0


def test_record_beyond_grace_is_dropped_and_counted_late() -> None:
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, 2_000))
    with driver:
        # Stream time 12000: close time 10000 == end of [0, 10000): that window is closed.
        pipe(driver, [("k", 5_000), ("k", 12_000)])
        emitted = len(got)
        pipe(driver, [("k", 9_999), ("j", 0)])
        assert len(got) == emitted  # nothing forwarded for late records
        assert store_counts(driver) == {("k", 0): 1, ("k", 10_000): 1}
        assert driver.metrics.late_records == 2
        # A record of the open window is still counted.
        pipe(driver, [("k", 10_001)])
        assert store_counts(driver)[("k", 10_000)] == 2


def test_without_grace_disorder_inside_the_current_window_is_fine() -> None:
    driver, _got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE))
    with driver:
        pipe(driver, [("k", 19_000), ("k", 10_000), ("k", 9_999)])
        assert store_counts(driver) == {("k", 10_000): 2}
        assert driver.metrics.late_records == 1


def test_hopping_record_late_for_one_window_is_counted_in_the_other() -> None:
    windows = TimeWindows.of_size_with_no_grace(SIZE).advance_by(5_000)
    driver, _got = windowed_count(windows)
    with driver:
        pipe(driver, [("k", 15_000)])  # close time 15000: [0,10000) and [5000,15000) closed
        pipe(driver, [("k", 12_000)])  # [5000,15000) late, [10000,20000) open
        assert store_counts(driver) == {("k", 10_000): 2, ("k", 15_000): 1}
        assert driver.metrics.late_records == 0
        pipe(driver, [("k", 9_000)])  # both its windows closed
        assert driver.metrics.late_records == 1


@pytest.mark.parametrize(("advance", "grace"), [(SIZE, 0), (SIZE, 3_000), (5_000, 1_000)])
def test_lateness_matches_brute_force(advance: int, grace: int) -> None:
    records = disordered(seed=advance + grace, n=700, keys=4, step=500, jitter=12_000)
    windows = TimeWindows.of_size_and_grace(SIZE, grace).advance_by(advance)
    driver, got = windowed_count(windows)
    with driver:
        pipe(driver, records)
        expected, late = reference(records, SIZE, advance, grace)
        assert 0 < late < len(records)
        assert driver.metrics.late_records == late
        assert store_counts(driver) == dict(expected)
        assert latest(got) == dict(expected)


def test_null_keys_are_dropped_not_late_and_null_values_are_counted() -> None:
    """KStreamWindowAggregate skips a null key only: a null value is aggregated (Kafka 4.1)."""
    driver, got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE))
    with driver:
        source = driver.create_input_topic("in")
        source.pipe_input(None, "x", timestamp=1_000)
        assert got == []
        source.pipe_input("k", None, timestamp=1_000)
        assert [(k.key, v, ts) for k, v, ts in got] == [("k", 1, 1_000)]
        assert driver.metrics.dropped_records == 1
        assert driver.metrics.late_records == 0


def test_lateness_follows_the_time_the_aggregation_observed() -> None:
    """A null-key record the aggregation skips does not move its observed stream time
    (KStreamWindowAggregate's observedStreamTime), so it makes no later record late."""
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, 5_000))
    with driver:
        source = driver.create_input_topic("in")
        source.pipe_input("x", "a", timestamp=1_000)
        source.pipe_input(None, "b", timestamp=30_000)
        source.pipe_input("x", "c", timestamp=2_000)
        assert [(k.key, v, ts) for k, v, ts in got] == [("x", 1, 1_000), ("x", 2, 2_000)]
        assert driver.metrics.late_records == 0


# -- retention ------------------------------------------------------------------------------------


def test_windows_older_than_retention_expire_from_the_store() -> None:
    retention = 3 * SIZE
    records = [(f"k{i % 3}", t) for i, t in enumerate(range(0, 100_000, 700))]
    materialized = Materialized.as_("w").with_retention(retention)
    driver, _got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE), materialized)
    with driver:
        pipe(driver, records)
        stream_time = records[-1][1]
        expected, _ = reference(records, SIZE, SIZE, 0)
        kept = {ks: c for ks, c in expected.items() if ks[1] > stream_time - retention}
        assert store_counts(driver) == kept
        assert {start for _, start in kept} == {70_000, 80_000, 90_000}


def test_window_store_memory_is_bounded_by_retention() -> None:
    retention = 3 * SIZE
    keys = 20
    rng = random.Random(12)
    # 10,000 records over 1,000 windows, 10 per window.
    records = [(f"k{rng.randrange(keys)}", i * (SIZE // 10)) for i in range(10_000)]
    materialized = Materialized.as_("w").with_retention(retention)
    driver, _got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE), materialized)
    with driver:
        store = driver.get_window_store("w")
        source = driver.create_input_topic("in")
        most_windows = most_entries = 0
        for i, (key, timestamp) in enumerate(records):
            source.pipe_input(key, "x", timestamp=timestamp)
            if i % 97 == 0:
                starts = {start for _, start, _ in store.all()}
                most_windows = max(most_windows, len(starts))
                most_entries = max(most_entries, store.approximate_num_entries())
        assert len({t // SIZE for _, t in records}) == 1_000
        assert most_windows <= 3
        assert most_entries <= 3 * keys
        assert {start for _, start, _ in store.all()} == {9_970_000, 9_980_000, 9_990_000}


def test_retention_shorter_than_size_plus_grace_is_refused() -> None:
    builder = StreamsBuilder()
    windowed = (
        builder.stream("in").group_by_key().windowed_by(TimeWindows.of_size_and_grace(SIZE, 5_000))
    )
    with pytest.raises(TopologyError, match="retention"):
        windowed.count(Materialized.as_("w").with_retention(SIZE + 4_999))
    # size + grace exactly is enough
    windowed.count(Materialized.as_("w2").with_retention(SIZE + 5_000))


def test_windowed_store_changelog_topic_config() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(TimeWindows.of_size_with_no_grace(SIZE))
        .count(Materialized.as_("w").with_retention(60_000))
    )
    topology = builder.build()
    changelog = topology.internal_topics["w-changelog"]
    assert changelog.kind == "changelog"
    assert changelog.config == {
        "cleanup.policy": "compact,delete",
        "retention.ms": str(60_000 + DAY),
    }
    assert topology.state_stores["w"].retention_ms == 60_000


# -- suppress(until_window_closes) ---------------------------------------------------------------


def test_suppress_emits_one_final_result_per_window_and_key_once_closed() -> None:
    grace = 2_000
    driver, got = windowed_count(TimeWindows.of_size_and_grace(SIZE, grace), suppress=True)
    with driver:
        pipe(driver, [("a", 1_000), ("a", 2_000), ("b", 3_000), ("a", 11_000)])
        assert got == []  # stream time 11000 < end 10000 + grace
        pipe(driver, [("a", 9_500)])  # late but within grace: part of the final result
        pipe(driver, [("a", 11_999)])  # stream time = end + grace - 1
        assert got == []
        pipe(driver, [("a", 12_000)])  # stream time = end + grace: [0, 10000) closes
        assert sorted((k.key, k.window.start, v) for k, v, _ in got) == [("a", 0, 3), ("b", 0, 1)]
        assert all(k.window.start <= ts < k.window.end for k, _, ts in got)
        # The closed window left the store; the open one is still there.
        assert store_counts(driver) == {("a", 10_000): 3}
        # Nothing more for that window: late records are dropped, nothing re-emitted.
        pipe(driver, [("a", 5_000), ("b", 13_000)])
        assert len(got) == 2
        assert driver.metrics.late_records == 1
        pipe(driver, [("c", 22_000)])  # closes [10000, 20000)
        assert sorted((k.key, k.window.start, v) for k, v, _ in got[2:]) == [
            ("a", 10_000, 3),
            ("b", 10_000, 1),
        ]
        assert store_counts(driver) == {("c", 20_000): 1}


@pytest.mark.parametrize(("advance", "grace"), [(SIZE, 0), (SIZE, 4_000), (5_000, 2_000)])
def test_suppress_final_results_match_brute_force(advance: int, grace: int) -> None:
    records = disordered(seed=7 + advance + grace, n=800, keys=5, step=400, jitter=9_000)
    windows = TimeWindows.of_size_and_grace(SIZE, grace).advance_by(advance)
    driver, got = windowed_count(windows, suppress=True)
    with driver:
        pipe(driver, records)
        stream_time = max(t for _, t in records)
        expected, late = reference(records, SIZE, advance, grace)
        closed = {ks: c for ks, c in expected.items() if ks[1] + SIZE <= stream_time - grace}
        emitted = [((k.key, k.window.start), v) for k, v, _ in got]
        assert len(emitted) == len(set(ks for ks, _ in emitted))  # once per window and key
        assert dict(emitted) == closed
        # A record far ahead closes every window of the input.
        flush_time = stream_time + SIZE + grace + 1
        pipe(driver, [("zz", flush_time)])
        emitted = [((k.key, k.window.start), v) for k, v, _ in got]
        assert len(emitted) == len(set(ks for ks, _ in emitted))
        assert dict(emitted) == dict(expected)
        assert driver.metrics.late_records == late
        assert set(store_counts(driver)) <= {
            ("zz", s) for s in reference_starts(flush_time, SIZE, advance)
        }


@pytest.mark.parametrize(
    ("retention", "last"),
    [(SIZE + 2_000, 12_000), (3 * SIZE, 50_000)],
    ids=["retention-is-size-plus-grace", "stream-time-jumps-past-retention"],
)
def test_suppress_emits_windows_before_retention_expires_them(retention: int, last: int) -> None:
    materialized = Materialized.as_("w").with_retention(retention)
    driver, got = windowed_count(
        TimeWindows.of_size_and_grace(SIZE, 2_000), materialized, suppress=True
    )
    with driver:
        pipe(driver, [("a", 5_000), ("b", 3_000), ("a", 11_000), ("a", last)])
        emitted = {(k.key, k.window.start): v for k, v, _ in got}
        assert emitted[("a", 0)] == 1
        assert emitted[("b", 0)] == 1
        if last >= 10_000 + SIZE + 2_000:
            assert emitted[("a", 10_000)] == 1


def test_suppress_emits_nothing_on_update_even_at_commit() -> None:
    driver, got = windowed_count(
        TimeWindows.of_size_with_no_grace(SIZE), suppress=True, commit_every_record=False
    )
    with driver:
        pipe(driver, [("a", 1_000), ("a", 2_000)])
        driver.commit()
        assert got == []
        pipe(driver, [("a", 10_000)])
        assert [(k, v) for k, v, _ in got] == [(w("a", 0), 2)]


def test_suppress_refused_on_a_derived_table() -> None:
    builder = StreamsBuilder()
    table = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(TimeWindows.of_size_with_no_grace(SIZE))
        .count()
        .filter(lambda _k, v: v > 1)
    )
    with pytest.raises(TopologyError, match="suppress"):
        table.suppress(Suppressed.until_window_closes())


# -- result timestamps ----------------------------------------------------------------------------


def test_result_timestamp_is_the_largest_contributing_timestamp() -> None:
    """KStreamWindowAggregate stamps a result max(record, previous aggregate) (KIP-258)."""
    driver, got = windowed_count(TimeWindows.of_size_with_no_grace(SIZE))
    with driver:
        pipe(driver, [("k", 5_000), ("k", 1_000)])
        assert [ts for _, _, ts in got] == [5_000, 5_000]
