"""Sliding windows (KIP-450) on the TopologyTestDriver.

Expectations come from:
- a brute-force reference written here: for the accepted records of a key, the
  windows are each record's left window [t - d, t] ([0, d] for t < d) and each
  record's right window [t + 1, t + 1 + d] when another record falls into it;
  a window's value is the aggregate of the records it contains in arrival order,
  its timestamp the largest of their timestamps;
- cases of Kafka Streams' own KStreamSlidingWindowAggregateTest, whose expected
  outputs (values and timestamps) are copied as they stand there.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from topicflow import Processor, Serdes, StreamsBuilder, StreamsConfig, TopologyError
from topicflow.dsl.options import Grouped, Materialized, Suppressed
from topicflow.dsl.sliding_windows import SlidingWindowedKStream
from topicflow.dsl.windows import SlidingWindows, TimeWindow, Windowed
from topicflow.processor.api import Record
from topicflow.testing import TopologyTestDriver

Out = tuple[Any, Any, int]


class Collect(Processor[Any, Any, None, None]):
    """Appends (key, value, timestamp) of every record it gets."""

    def __init__(self, sink: list[Out]) -> None:
        self.sink = sink

    def process(self, record: Record[Any, Any]) -> None:
        self.sink.append((record.key, record.value, record.timestamp))


def config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id="sliding-app",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **overrides,
    )


def string_adder(key: Any, value: str, aggregate: str) -> str:
    """Kafka's MockAggregator.TOSTRING_ADDER, with MockInitializer.STRING_INIT "0"."""
    return f"{aggregate}+{value}"


def sliding_aggregate(
    windows: SlidingWindows,
    materialized: Materialized | None = None,
    suppress: bool = False,
    **driver_args: Any,
) -> tuple[TopologyTestDriver, list[Out]]:
    """in -> group_by_key -> sliding aggregate "0+v1+v2..." (store "s") -> collected output."""
    got: list[Out] = []
    builder = StreamsBuilder()
    table = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(windows)
        .aggregate(lambda: "0", string_adder, materialized or Materialized.as_("s"))
    )
    if suppress:
        table = table.suppress(Suppressed.until_window_closes())
    table.to_stream().process(lambda: Collect(got))
    return TopologyTestDriver(builder.build(), config(), **driver_args), got


def pipe(driver: TopologyTestDriver, records: Sequence[tuple[str | None, str | None, int]]) -> None:
    source = driver.create_input_topic("in")
    for key, value, timestamp in records:
        source.pipe_input(key, value, timestamp=timestamp)


def w(key: str, start: int, difference: int) -> Windowed[str]:
    return Windowed(key, TimeWindow(start, start + difference))


def final(got: list[Out]) -> dict[Windowed[str], tuple[Any, int]]:
    """The latest (value, timestamp) per windowed key."""
    return {key: (value, timestamp) for key, value, timestamp in got}


def by_window(got: list[Out]) -> list[Out]:
    """Every output, stably sorted by key then window start (as Kafka's tests compare)."""
    return sorted(got, key=lambda out: (out[0].key, out[0].window.start))


# -- the brute-force reference ---------------------------------------------------------------


def reference(
    records: list[tuple[str, str, int]], difference: int
) -> dict[Windowed[str], tuple[str, int]]:
    """(value "0+v1+...", largest timestamp) of every window, for records all accepted."""
    result = {}
    for key in {k for k, _, _ in records}:
        mine = [(v, t) for k, v, t in records if k == key]
        times = {t for _, t in mine}
        starts = {t - difference if t >= difference else 0 for t in times}
        starts |= {q + 1 for q in times if any(q < r <= q + 1 + difference for r in times)}
        for start in starts:
            inside = [(v, t) for v, t in mine if start <= t <= start + difference]
            value = "0" + "".join(f"+{v}" for v, _ in inside)
            result[w(key, start, difference)] = (value, max(t for _, t in inside))
    return result


def random_records(
    rng: random.Random, n: int, difference: int, disorder: int
) -> list[tuple[str, str, int]]:
    records = []
    now = rng.randrange(difference * 2)  # sometimes early records (t < difference)
    for i in range(n):
        now += rng.choice([0, 0, 1, 2, difference - 1, difference, difference + 1, difference + 2])
        now += rng.randrange(difference // 2 + 1)
        t = max(0, now - rng.randrange(disorder + 1))
        records.append((rng.choice("ab"), str(i), t))
    return records


@pytest.mark.parametrize("seed", range(12))
def test_random_in_order_records_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    difference = rng.choice([3, 10, 50])
    records = random_records(rng, 80, difference, disorder=0)
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(difference))
    with driver:
        pipe(driver, [(k, v, t) for k, v, t in records])
        assert final(got) == reference(records, difference)
        assert driver.metrics.late_records == 0
        store = {
            w(key, start, difference): value
            for key, start, value in driver.get_window_store("s").all()
        }
        assert store == {key: value for key, (value, _) in reference(records, difference).items()}


@pytest.mark.parametrize("seed", range(12))
def test_random_out_of_order_records_within_grace_match_the_reference(seed: int) -> None:
    rng = random.Random(1000 + seed)
    difference = rng.choice([3, 10, 50])
    disorder = rng.choice([1, difference, 3 * difference])
    records = random_records(rng, 80, difference, disorder)
    # Stream time is at most `disorder` ahead of any record: with that much grace no
    # window a record belongs to is closed when it arrives.
    windows = SlidingWindows.of_time_difference_and_grace(difference, disorder + difference)
    driver, got = sliding_aggregate(windows)
    with driver:
        pipe(driver, records)
        assert final(got) == reference(records, difference)
        assert driver.metrics.late_records == 0


@pytest.mark.parametrize("seed", range(4))
def test_with_caching_across_records_the_final_values_are_the_same(seed: int) -> None:
    rng = random.Random(2000 + seed)
    difference = 10
    records = random_records(rng, 60, difference, disorder=25)
    windows = SlidingWindows.of_time_difference_and_grace(difference, 40)
    driver, got = sliding_aggregate(windows, commit_every_record=False)
    with driver:
        pipe(driver, records)
        driver.commit()
        assert final(got) == reference(records, difference)
        assert len(got) == len(final(got))  # one commit: one record per window
        assert all(value is not None for _, value, _ in got)


def test_count_reduce_and_aggregate_agree_with_the_reference() -> None:
    records = [("a", "1", 10), ("a", "2", 14), ("a", "3", 15), ("a", "4", 22), ("a", "5", 30)]
    expected = reference(records, 10)
    results: dict[str, list[Out]] = {"count": [], "reduce": []}
    builder = StreamsBuilder()
    windowed = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SlidingWindows.of_time_difference_with_no_grace(10))
    )
    windowed.count(Materialized.as_("c")).to_stream().process(lambda: Collect(results["count"]))
    windowed.reduce(lambda agg, value: agg + value, Materialized.as_("r")).to_stream().process(
        lambda: Collect(results["reduce"])
    )
    with TopologyTestDriver(builder.build(), config()) as driver:
        pipe(driver, records)
    assert {k: v for k, (v, _) in final(results["count"]).items()} == {
        k: v.count("+") for k, (v, _) in expected.items()
    }
    assert {k: v for k, (v, _) in final(results["reduce"]).items()} == {
        k: v.replace("+", "")[1:] for k, (v, _) in expected.items()
    }


# -- Kafka Streams' own test cases ------------------------------------------------------------


def test_kafka_aggregate_small_input() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(10, 50))
    with driver:
        pipe(
            driver, [("A", "1", 10), ("A", "2", 15), ("A", "3", 20), ("A", "4", 22), ("A", "5", 30)]
        )
    assert {key.window.start: value for key, value in final(got).items()} == {
        0: ("0+1", 10),
        5: ("0+1+2", 15),
        10: ("0+1+2+3", 20),
        11: ("0+2+3", 20),
        12: ("0+2+3+4", 22),
        16: ("0+3+4", 22),
        20: ("0+3+4+5", 30),
        21: ("0+4+5", 30),
        23: ("0+5", 30),
    }


def test_kafka_reduce_small_input() -> None:
    got: list[Out] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SlidingWindows.of_time_difference_and_grace(10, 50))
        .reduce(lambda agg, value: f"{agg}+{value}", Materialized.as_("s"))
        .to_stream()
        .process(lambda: Collect(got))
    )
    with TopologyTestDriver(builder.build(), config()) as driver:
        values = [("1", 10), ("2", 14), ("3", 15), ("4", 22), ("5", 26), ("6", 30)]
        pipe(driver, [("A", v, t) for v, t in values])
    assert {key.window.start: value for key, value in final(got).items()} == {
        0: ("1", 10),
        4: ("1+2", 14),
        5: ("1+2+3", 15),
        11: ("2+3", 15),
        12: ("2+3+4", 22),
        15: ("3+4", 22),
        16: ("4+5", 26),
        20: ("4+5+6", 30),
        23: ("5+6", 30),
        27: ("6", 30),
    }


def test_kafka_aggregate_large_input_out_of_order() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(10, 50))
    with driver:
        pipe(driver, [("A", "1", 10), ("A", "2", 20), ("A", "3", 22), ("A", "4", 15)])
        pipe(driver, [("B", "1", 12), ("B", "2", 13), ("B", "3", 18), ("B", "4", 19)])
        pipe(driver, [("B", "5", 25), ("B", "6", 14)])
        pipe(driver, [("C", "1", 11), ("C", "2", 15), ("C", "3", 16), ("C", "4", 21)])
        pipe(driver, [("C", "5", 23)])
        pipe(driver, [("D", "4", 11), ("D", "2", 12), ("D", "3", 29), ("D", "5", 16)])

    def a(start: int, value: str, ts: int, key: str = "A") -> Out:
        return (w(key, start, 10), value, ts)

    assert by_window(got) == [
        a(0, "0+1", 10),
        a(5, "0+1+4", 15),
        a(10, "0+1+2", 20),
        a(10, "0+1+2+4", 20),
        a(11, "0+2", 20),
        a(11, "0+2+4", 20),
        a(12, "0+2+3", 22),
        a(12, "0+2+3+4", 22),
        a(16, "0+2+3", 22),
        a(21, "0+3", 22),
        a(2, "0+1", 12, "B"),
        a(3, "0+1+2", 13, "B"),
        a(4, "0+1+2+6", 14, "B"),
        a(8, "0+1+2+3", 18, "B"),
        a(8, "0+1+2+3+6", 18, "B"),
        a(9, "0+1+2+3+4", 19, "B"),
        a(9, "0+1+2+3+4+6", 19, "B"),
        a(13, "0+2", 13, "B"),
        a(13, "0+2+3", 18, "B"),
        a(13, "0+2+3+4", 19, "B"),
        a(13, "0+2+3+4+6", 19, "B"),
        a(14, "0+3", 18, "B"),
        a(14, "0+3+4", 19, "B"),
        a(14, "0+3+4+6", 19, "B"),
        a(15, "0+3+4+5", 25, "B"),
        a(19, "0+4", 19, "B"),
        a(19, "0+4+5", 25, "B"),
        a(20, "0+5", 25, "B"),
        a(1, "0+1", 11, "C"),
        a(5, "0+1+2", 15, "C"),
        a(6, "0+1+2+3", 16, "C"),
        a(11, "0+1+2+3+4", 21, "C"),
        a(12, "0+2", 15, "C"),
        a(12, "0+2+3", 16, "C"),
        a(12, "0+2+3+4", 21, "C"),
        a(13, "0+2+3+4+5", 23, "C"),
        a(16, "0+3", 16, "C"),
        a(16, "0+3+4", 21, "C"),
        a(16, "0+3+4+5", 23, "C"),
        a(17, "0+4", 21, "C"),
        a(17, "0+4+5", 23, "C"),
        a(22, "0+5", 23, "C"),
        a(1, "0+4", 11, "D"),
        a(2, "0+4+2", 12, "D"),
        a(6, "0+4+2+5", 16, "D"),
        a(12, "0+2", 12, "D"),
        a(12, "0+2+5", 16, "D"),
        a(13, "0+5", 16, "D"),
        a(19, "0+3", 29, "D"),
    ]


def test_kafka_early_records_small_input() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(50, 200))
    with driver:
        pipe(driver, [("A", "1", 0), ("A", "2", 5), ("A", "3", 6), ("A", "4", 3)])
        pipe(driver, [("A", "5", 13), ("A", "6", 10)])
    assert {key.window.start: value for key, value in final(got).items()} == {
        0: ("0+1+2+3+4+5+6", 13),
        1: ("0+2+3+4+5+6", 13),
        4: ("0+2+3+5+6", 13),
        6: ("0+3+5+6", 13),
        7: ("0+5+6", 13),
        11: ("0+5", 13),
    }


def test_kafka_early_records_repeated_input() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(5, 20))
    with driver:
        pipe(driver, [("A", "1", 0), ("A", "2", 2), ("A", "3", 4), ("A", "4", 0)])
        pipe(driver, [("A", "5", 2), ("A", "6", 2), ("A", "7", 0)])
    assert {key.window.start: value for key, value in final(got).items()} == {
        0: ("0+1+2+3+4+5+6+7", 4),
        1: ("0+2+3+5+6", 4),
        3: ("0+3", 4),
    }


KAFKA_NO_GRACE_INPUT = [
    ("1", 0),
    ("3", 5),
    ("4", 6),
    ("2", 3),
    ("6", 13),
    ("5", 10),
    ("7", 4),
    ("8", 2),
    ("9", 15),
]


def test_kafka_no_grace_period_large_input() -> None:
    """Out of order without grace: closed windows are skipped, E@102 is dropped."""
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("E", v, 100 + t) for v, t in KAFKA_NO_GRACE_INPUT])
        assert driver.metrics.late_records == 1  # E@102: 102 + 1 + 10 <= 113 - 0

    def e(start: int, value: str, ts: int) -> Out:
        return (w("E", start, 10), value, ts)

    assert by_window(got) == [
        e(90, "0+1", 100),
        e(95, "0+1+3", 105),
        e(96, "0+1+3+4", 106),
        e(96, "0+1+3+4+2", 106),
        e(101, "0+3", 105),
        e(101, "0+3+4", 106),
        e(101, "0+3+4+2", 106),
        e(103, "0+3+4+2+6", 113),
        e(103, "0+3+4+2+6+5", 113),
        e(103, "0+3+4+2+6+5+7", 113),
        e(104, "0+3+4", 106),
        e(104, "0+3+4+6", 113),
        e(104, "0+3+4+6+5", 113),
        e(104, "0+3+4+6+5+7", 113),
        e(105, "0+3+4+6+5", 113),
        e(105, "0+3+4+6+5+9", 115),
        e(106, "0+4", 106),
        e(106, "0+4+6", 113),
        e(106, "0+4+6+5", 113),
        e(106, "0+4+6+5+9", 115),
        e(107, "0+6", 113),
        e(107, "0+6+5", 113),
        e(107, "0+6+5+9", 115),
        e(111, "0+6", 113),
        e(111, "0+6+9", 115),
        e(114, "0+9", 115),
    ]


def test_kafka_early_no_grace_period_large_input() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("E", v, t) for v, t in KAFKA_NO_GRACE_INPUT])

    def e(start: int, value: str, ts: int) -> Out:
        return (w("E", start, 10), value, ts)

    assert by_window(got) == [
        e(0, "0+1", 0),
        e(0, "0+1+3", 5),
        e(0, "0+1+3+4", 6),
        e(0, "0+1+3+4+2", 6),
        e(1, "0+3", 5),
        e(1, "0+3+4", 6),
        e(1, "0+3+4+2", 6),
        e(3, "0+3+4+2+6", 13),
        e(3, "0+3+4+2+6+5", 13),
        e(3, "0+3+4+2+6+5+7", 13),
        e(4, "0+3+4", 6),
        e(4, "0+3+4+6", 13),
        e(4, "0+3+4+6+5", 13),
        e(4, "0+3+4+6+5+7", 13),
        e(5, "0+3+4+6+5", 13),
        e(5, "0+3+4+6+5+9", 15),
        e(6, "0+4", 6),
        e(6, "0+4+6", 13),
        e(6, "0+4+6+5", 13),
        e(6, "0+4+6+5+9", 15),
        e(7, "0+6", 13),
        e(7, "0+6+5", 13),
        e(7, "0+6+5+9", 15),
        e(11, "0+6", 13),
        e(11, "0+6+9", 15),
        e(14, "0+9", 15),
    ]


# -- boundaries and late records --------------------------------------------------------------


def test_records_exactly_the_difference_apart_share_a_window() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("a", "1", 100), ("a", "2", 110)])
    assert final(got) == {
        w("a", 90, 10): ("0+1", 100),
        w("a", 100, 10): ("0+1+2", 110),
        w("a", 101, 10): ("0+2", 110),  # 100's right window: 110 falls into it
    }


def test_records_one_ms_more_than_the_difference_apart_do_not() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("a", "1", 100), ("a", "2", 111)])
    # 111's left window [101, 111] is 100's right window: one window.
    assert final(got) == {w("a", 90, 10): ("0+1", 100), w("a", 101, 10): ("0+2", 111)}


def test_records_further_apart_create_no_right_window() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("a", "1", 100), ("a", "2", 112)])
    assert final(got) == {w("a", 90, 10): ("0+1", 100), w("a", 102, 10): ("0+2", 112)}


def test_late_records_are_dropped_and_counted() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(10, 5))
    with driver:
        pipe(driver, [("a", "1", 100)])  # close time 95
        got.clear()
        # Dropped: t + 1 + difference <= close time.
        pipe(driver, [("a", "x", 84)])
        assert got == []
        assert driver.metrics.late_records == 1
        # 92 + 1 + 10 > 95: accepted. [90, 100] holds it; its left window [82, 92] ends
        # before the close time and is skipped; its right window [93, 103] is made, of 100.
        pipe(driver, [("a", "2", 92)])
        assert final(got) == {w("a", 90, 10): ("0+1+2", 100), w("a", 93, 10): ("0+1", 100)}
        assert driver.metrics.late_records == 1


def test_a_record_that_would_change_only_closed_windows_is_late() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("a", "1", 100), ("b", "2", 120)])  # stream time 120
        got.clear()
        # 110 + 11 > 120: not dropped outright, but [100, 110] and 100's right window
        # [101, 111] end before 120, and no later record of "a" makes a right window.
        pipe(driver, [("a", "3", 110)])
        assert got == []
        assert driver.metrics.late_records == 1


def test_null_keys_and_values_are_dropped_and_counted() -> None:
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [(None, "1", 100), ("a", None, 100)])
        assert got == []
        assert driver.metrics.dropped_records == 2


# -- the stores -------------------------------------------------------------------------------


def test_the_window_store_holds_each_aggregate_with_its_largest_record_timestamp() -> None:
    """A timestamped window store, as Kafka's: the algorithm reads the timestamps back."""
    driver, _ = sliding_aggregate(SlidingWindows.of_time_difference_with_no_grace(10))
    with driver:
        pipe(driver, [("a", "1", 100), ("a", "2", 105), ("a", "3", 105)])
        store = driver.get_window_store("s")
        assert sorted((start, value) for key, start, value in store.all()) == [
            (90, "0+1"),
            (95, "0+1+2+3"),
            (101, "0+2+3"),
        ]
        assert store.fetch("a", 95) == "0+1+2+3"
        assert store.fetch_with_timestamp("a", 90)[:2] == ("0+1", 100)
        assert store.fetch_with_timestamp("a", 101)[:2] == ("0+2+3", 105)


def test_the_store_has_a_changelog_and_retention_is_checked() -> None:
    builder = StreamsBuilder()
    windowed = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SlidingWindows.of_time_difference_and_grace(10, 5))
    )
    assert isinstance(windowed, SlidingWindowedKStream)
    with pytest.raises(TopologyError, match="retention"):
        windowed.count(Materialized.as_("short").with_retention(24))
    windowed.count(Materialized.as_("s").with_retention(25))
    topics = builder.build().internal_topics
    assert set(topics) == {"s-changelog"}


def test_a_persistent_store_gives_the_same_results(tmp_path: Any) -> None:
    records = random_records(random.Random(7), 40, 10, disorder=15)
    got: list[Out] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SlidingWindows.of_time_difference_and_grace(10, 30))
        .aggregate(lambda: "0", string_adder, Materialized.as_("s").persistent_store())
        .to_stream()
        .process(lambda: Collect(got))
    )
    with TopologyTestDriver(builder.build(), config(state_dir=str(tmp_path))) as driver:
        pipe(driver, records)
    assert final(got) == reference(records, 10)


# -- through a repartition topic ---------------------------------------------------------------


def test_sliding_windows_after_group_by_go_through_a_repartition_topic() -> None:
    got: list[Out] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by(lambda key, value: value.split(":")[0], Grouped.as_("by-user"))
        .windowed_by(SlidingWindows.of_time_difference_with_no_grace(10))
        .aggregate(lambda: "0", lambda k, v, agg: f"{agg}+{v.split(':')[1]}", Materialized.as_("s"))
        .to_stream()
        .process(lambda: Collect(got))
    )
    topology = builder.build()
    assert "by-user-repartition" in topology.internal_topics
    records = [("p1", "ann:1", 10), ("p2", "bob:2", 12), ("p3", "ann:3", 15), ("p4", "ann:4", 22)]
    with TopologyTestDriver(topology, config()) as driver:
        pipe(driver, records)
    expected = reference([(v.split(":")[0], v.split(":")[1], t) for _, v, t in records], 10)
    assert final(got) == expected


# -- suppress(until_window_closes) -------------------------------------------------------------


def test_suppress_emits_each_window_once_after_its_end_plus_grace() -> None:
    """Kafka's KTableSuppressProcessor: its stream time is the largest timestamp of the
    updates it receives; a window goes out once its end <= that - grace (end inclusive
    here, so one ms earlier than the aggregation closes it), with the timestamp of its
    last update, ordered by window end, then serialized windowed key."""
    driver, got = sliding_aggregate(
        SlidingWindows.of_time_difference_and_grace(10, 5), suppress=True
    )
    with driver:
        pipe(driver, [("a", "1", 100)])
        assert got == []
        # a@105 updates 100's right window [101, 111] at 105: 100 <= 105 - 5.
        pipe(driver, [("a", "2", 105)])
        assert got == [(w("a", 90, 10), "0+1", 100)]
        pipe(driver, [("b", "x", 105), ("b", "y", 106)])
        assert len(got) == 1
        pipe(driver, [("b", "z", 200)])
        assert got == [
            (w("a", 90, 10), "0+1", 100),
            (w("a", 95, 10), "0+1+2", 105),
            (w("b", 95, 10), "0+x", 105),
            (w("b", 96, 10), "0+x+y", 106),
            (w("a", 101, 10), "0+2", 105),
            (w("b", 106, 10), "0+y", 106),
        ]


def test_suppress_a_record_that_changes_no_window_emits_nothing() -> None:
    """The suppression sees only updates: a record that makes none (late) emits nothing."""
    driver, got = sliding_aggregate(
        SlidingWindows.of_time_difference_and_grace(10, 5), suppress=True
    )
    with driver:
        pipe(driver, [("a", "1", 100), ("b", "2", 120)])  # b@120's left window closes 90's
        assert got == [(w("a", 90, 10), "0+1", 100)]
        # Close time 115: b@105's only window, its left [95, 105], is closed: no update,
        # and [110, 120] (end 120 > 120 - 5) stays buffered.
        pipe(driver, [("b", "late", 105)])
        assert driver.metrics.late_records == 1
        assert len(got) == 1
        pipe(driver, [("c", "3", 130)])
        assert got[1:] == [(w("b", 110, 10), "0+2", 120)]


def test_suppress_gives_the_final_value_of_every_window() -> None:
    rng = random.Random(99)
    records = random_records(rng, 60, 10, disorder=8)
    driver, got = sliding_aggregate(
        SlidingWindows.of_time_difference_and_grace(10, 18), suppress=True
    )
    with driver:
        pipe(driver, records)
        pipe(driver, [("flush", "x", 10_000)])
    expected = reference(records, 10)
    assert len(got) == len({key for key, _, _ in got})  # once each
    assert final(got) == expected


def test_a_task_continues_from_restored_stores() -> None:
    """The window starts are read back from the store at the first record, as after a
    restore: a second driver whose store is loaded with the first one's windows (and
    their timestamps) carries on as if it had seen every record."""
    rng = random.Random(5)
    # Dense: the second half's first windows reach back into the first half.
    records = [(rng.choice("ab"), str(i), 100 + 3 * i + rng.randrange(3)) for i in range(60)]
    first, second = records[:30], records[30:]
    windows = SlidingWindows.of_time_difference_with_no_grace(10)
    before, _ = sliding_aggregate(windows)
    with before:
        pipe(before, first)
        saved = list(before.get_window_store("s").fetch_all_with_timestamps(0, 10_000))
    after, got = sliding_aggregate(windows)
    with after:
        store = after.get_window_store("s")
        for key, start, entry in saved:
            store.put(key, entry[0], start, entry[1])
        after.commit()
        got.clear()  # the loading itself
        pipe(after, second)
        store = {
            w(key, start, 10): value for key, start, value in after.get_window_store("s").all()
        }
    expected = reference(records, 10)
    assert store == {key: value for key, (value, _) in expected.items()}
    touched = {key for key, _, _ in got}
    assert final(got) == {key: expected[key] for key in touched}


# -- Kafka's order and its holes (KStreamSlidingWindowAggregate, checked against 4.1.1) -------


def test_a_new_right_window_comes_before_the_update_of_the_window_holding_it() -> None:
    """processEarly: the previous record's right window is created before [0, d] is
    updated; processReverse: updates newest window first, then the created ones."""
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(5000, 3000))
    with driver:
        pipe(driver, [("c", "1", 2000), ("c", "2", 4000)])
        assert got == [
            (w("c", 0, 5000), "0+1", 2000),
            (w("c", 2001, 5000), "0+2", 4000),
            (w("c", 0, 5000), "0+1+2", 4000),
        ]


def test_a_left_window_closed_on_arrival_is_never_made_and_later_ones_copy_past_it() -> None:
    """x@14000 arrives with close time 17000: its left window [9000, 14000] is skipped,
    only 13500's right window is made. x@18200 then copies its left window from
    [8500, 13500] (the latest window ending before 13200), missing 14000: Kafka's result."""
    driver, got = sliding_aggregate(SlidingWindows.of_time_difference_and_grace(5000, 3000))
    with driver:
        pipe(driver, [("x", "a", 13500), ("y", "b", 20000), ("x", "c", 14000)])
        assert got[-1:] == [(w("x", 13501, 5000), "0+c", 14000)]
        pipe(driver, [("x", "d", 18200)])
        assert got[-2:] == [
            (w("x", 13501, 5000), "0+c+d", 18200),
            (w("x", 13200, 5000), "0+a+d", 18200),
        ]
