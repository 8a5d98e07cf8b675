"""Session windows on the TopologyTestDriver: merging, gap boundaries, grace, late records,
aggregate with a merger, the store, suppress, caching, repartitioning, restore.

Expectations are written by hand from Kafka Streams' rules, or computed by a
brute-force reference written here: the sessions of a key are the runs of its
sorted timestamps in which consecutive timestamps differ by at most the gap (a
difference equal to the gap merges); a record is late, with stream time the
largest timestamp seen so far (its own included), when the session it would
end up in ends before stream time - grace - gap.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pytest

from topicflow import Processor, Serdes, StreamsBuilder, StreamsConfig, TopologyError
from topicflow.dsl.options import Grouped, Materialized, Suppressed
from topicflow.dsl.session_windows import SessionWindowedKStream
from topicflow.dsl.windows import SessionWindow, SessionWindows, Windowed
from topicflow.processor.api import Record
from topicflow.state.session_store import (
    InMemorySessionStore,
    session_changelog_key,
    split_session_changelog_key,
)
from topicflow.testing import TopologyTestDriver

GAP = 5_000
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
        application_id="session-app",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **overrides,
    )


def session_count(
    windows: SessionWindows,
    materialized: Materialized | None = None,
    suppress: bool = False,
    **driver_args: Any,
) -> tuple[TopologyTestDriver, list[Out]]:
    """in -> group_by_key -> session count (store "s") -> collected output."""
    got: list[Out] = []
    builder = StreamsBuilder()
    table = (
        builder.stream("in")
        .group_by_key()
        .windowed_by(windows)
        .count(materialized or Materialized.as_("s"))
    )
    if suppress:
        table = table.suppress(Suppressed.until_window_closes())
    table.to_stream().process(lambda: Collect(got))
    return TopologyTestDriver(builder.build(), config(), **driver_args), got


def pipe(
    driver: TopologyTestDriver, records: Sequence[tuple[str | None, int]], value: Any = "x"
) -> None:
    source = driver.create_input_topic("in")
    for key, timestamp in records:
        source.pipe_input(key, value, timestamp=timestamp)


def s(key: str, start: int, end: int) -> Windowed[str]:
    return Windowed(key, SessionWindow(start, end))


def sessions(driver: TopologyTestDriver, key: str, name: str = "s") -> list[tuple[int, int, Any]]:
    return list(driver.get_state_store(name).fetch(key))


def final_table(got: list[Out]) -> dict[Windowed[str], Any]:
    """The table the output describes: the latest value per windowed key, tombstones deleting."""
    table: dict[Windowed[str], Any] = {}
    for key, value, _ in got:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    return table


# -- the brute-force reference ---------------------------------------------------------------


def reference_sessions(
    records: list[tuple[str, int]], gap: int, grace: int
) -> tuple[dict[Windowed[str], int], int]:
    """(count per session, late records) for records processed in the given order.

    Sessions are recomputed from scratch from the accepted records at every step:
    a record is accepted when the session it would join, among the sessions of the
    records accepted so far, ends at or after stream time - grace - gap.
    """
    accepted: dict[str, list[int]] = {}
    late = 0
    stream_time = -1
    for key, t in records:
        stream_time = max(stream_time, t)
        candidate = sorted([*accepted.get(key, []), t])
        session_end = max(run[-1] for run in _runs(candidate, gap) if t in run)
        if session_end < stream_time - grace - gap:
            late += 1
        else:
            accepted.setdefault(key, []).append(t)
    result = {}
    for key, times in accepted.items():
        for run in _runs(sorted(times), gap):
            result[s(key, run[0], run[-1])] = len(run)
    return result, late


def _runs(times: list[int], gap: int) -> list[list[int]]:
    runs: list[list[int]] = []
    for t in times:
        if runs and t - runs[-1][-1] <= gap:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


# -- one session, extended, merged -----------------------------------------------------------


def test_a_single_record_makes_a_session_of_one_instant() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000)])
        assert got == [(s("a", 1_000, 1_000), 1, 1_000)]
        assert sessions(driver, "a") == [(1_000, 1_000, 1)]


def test_records_within_the_gap_extend_the_session_replacing_the_old_one() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 3_000), ("a", 7_000)])
        assert got == [
            # Results and tombstones carry their session's end as timestamp
            # (KStreamSessionWindowAggregate.maybeForwardUpdate).
            (s("a", 1_000, 1_000), 1, 1_000),
            (s("a", 1_000, 1_000), None, 1_000),
            (s("a", 1_000, 3_000), 2, 3_000),
            (s("a", 1_000, 3_000), None, 3_000),
            (s("a", 1_000, 7_000), 3, 7_000),
        ]
        assert sessions(driver, "a") == [(1_000, 7_000, 3)]


def test_a_record_inside_a_session_keeps_its_bounds() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 4_000), ("a", 2_000)])
        # Kafka removes [1000, 4000] and puts it back: in the cache, one change.
        assert got[-2:] == [
            (s("a", 1_000, 4_000), 2, 4_000),
            (s("a", 1_000, 4_000), 3, 4_000),
        ]
        assert sessions(driver, "a") == [(1_000, 4_000, 3)]


def test_a_record_at_the_same_time_as_a_one_instant_session_updates_it_in_place() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 1_000)])
        # The merged session is [t, t] itself: nothing removed, no tombstone (Kafka's rule).
        assert got == [(s("a", 1_000, 1_000), 1, 1_000), (s("a", 1_000, 1_000), 2, 1_000)]


def test_a_bridging_record_merges_two_sessions_tombstoning_both() -> None:
    # A day's retention: with the default (gap + grace) the older session would have
    # expired from the store, and a cached one's tombstone is then dropped at flush.
    materialized = Materialized.as_("s").with_retention(DAY)
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), materialized)
    with driver:
        pipe(driver, [("a", 0), ("a", 10_000)])
        assert sessions(driver, "a") == [(0, 0, 1), (10_000, 10_000, 1)]
        got.clear()
        pipe(driver, [("a", 5_000)])  # exactly one gap from both
        assert got == [
            # Each tombstone at the end of the session it removes, the merged at its own.
            (s("a", 0, 0), None, 0),
            (s("a", 10_000, 10_000), None, 10_000),
            (s("a", 0, 10_000), 3, 10_000),
        ]
        assert sessions(driver, "a") == [(0, 10_000, 3)]


def test_a_bridging_record_merges_every_session_it_reaches() -> None:
    # A day's retention: with the default (gap + grace) the older session would have
    # expired from the store, and a cached one's tombstone is then dropped at flush.
    materialized = Materialized.as_("s").with_retention(DAY)
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), materialized)
    with driver:
        pipe(driver, [("a", 0), ("a", 2_000), ("a", 9_000), ("a", 12_000)])
        assert sessions(driver, "a") == [(0, 2_000, 2), (9_000, 12_000, 2)]
        got.clear()
        pipe(driver, [("a", 6_000)])
        assert got == [
            (s("a", 0, 2_000), None, 2_000),
            (s("a", 9_000, 12_000), None, 12_000),
            (s("a", 0, 12_000), 5, 12_000),
        ]


# -- gap boundaries ---------------------------------------------------------------------------


def test_records_exactly_one_gap_apart_share_a_session() -> None:
    driver, _ = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 1_000 + GAP)])
        assert sessions(driver, "a") == [(1_000, 1_000 + GAP, 2)]


def test_records_one_ms_more_than_the_gap_apart_do_not() -> None:
    driver, _ = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 1_001 + GAP)])
        assert sessions(driver, "a") == [(1_000, 1_000, 1), (1_001 + GAP, 1_001 + GAP, 1)]


def test_an_earlier_record_exactly_one_gap_before_extends_the_session_backwards() -> None:
    driver, _ = session_count(SessionWindows.of_inactivity_gap_and_grace(GAP, DAY // 2))
    with driver:
        pipe(driver, [("a", 20_000), ("a", 20_000 - GAP), ("a", 20_000 - 2 * GAP - 1)])
        assert sessions(driver, "a") == [
            (20_000 - 2 * GAP - 1, 20_000 - 2 * GAP - 1, 1),
            (20_000 - GAP, 20_000, 2),
        ]


def test_keys_have_sessions_of_their_own() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("b", 2_000), ("a", 3_000), ("b", 9_000)])
        assert sessions(driver, "a") == [(1_000, 3_000, 2)]
        assert sessions(driver, "b") == [(2_000, 2_000, 1), (9_000, 9_000, 1)]
        assert final_table(got) == {
            s("a", 1_000, 3_000): 2,
            s("b", 2_000, 2_000): 1,
            s("b", 9_000, 9_000): 1,
        }


# -- grace and late records -------------------------------------------------------------------


def test_without_grace_a_record_is_late_once_its_session_ends_before_stream_time_minus_gap() -> (
    None
):
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 20_000)])  # stream time 20000: close time 20000 - 0 - 5000
        got.clear()
        pipe(driver, [("b", 14_999)])  # session [14999, 14999] ends before 15000: late
        assert got == []
        assert driver.metrics.late_records == 1
        pipe(driver, [("b", 15_000)])  # ends at the close time: accepted
        assert got == [(s("b", 15_000, 15_000), 1, 15_000)]
        assert driver.metrics.late_records == 1
        assert sessions(driver, "b") == [(15_000, 15_000, 1)]


def test_grace_moves_the_close_time_back() -> None:
    grace = 2_000
    driver, got = session_count(SessionWindows.of_inactivity_gap_and_grace(GAP, grace))
    with driver:
        pipe(driver, [("a", 20_000)])  # close time 20000 - 2000 - 5000 = 13000
        got.clear()
        pipe(driver, [("b", 12_999), ("b", 13_000)])
        assert got == [(s("b", 13_000, 13_000), 1, 13_000)]
        assert driver.metrics.late_records == 1


def test_a_late_timestamp_merging_into_an_open_session_is_accepted() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 17_000), ("a", 20_000)])  # session [17000, 20000], close 15000
        got.clear()
        # 12500 < close time, but it merges into [12500, 20000], which ends after it.
        pipe(driver, [("a", 12_500)])
        assert got == [
            (s("a", 17_000, 20_000), None, 20_000),
            (s("a", 12_500, 20_000), 3, 20_000),
        ]
        assert driver.metrics.late_records == 0


def test_late_records_do_not_change_the_store() -> None:
    driver, _ = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [("a", 1_000), ("a", 30_000), ("a", 2_000)])
        assert sessions(driver, "a") == [(1_000, 1_000, 1), (30_000, 30_000, 1)]
        assert driver.metrics.late_records == 1


def test_null_keys_are_dropped_and_counted_but_null_values_are_aggregated() -> None:
    # KStreamSessionWindowAggregate skips a null key only; a null value goes to the
    # aggregator (count counts it). A dropped record does not move the
    # aggregation's stream time either: it is the largest timestamp it took.
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with driver:
        pipe(driver, [(None, 100_000)])
        pipe(driver, [("a", 1_000)], value=None)
        assert got == [(s("a", 1_000, 1_000), 1, 1_000)]
        assert driver.metrics.dropped_records == 1
        assert driver.metrics.late_records == 0


@pytest.mark.parametrize("seed", range(8))
def test_random_records_match_the_reference(seed: int) -> None:
    rng = random.Random(seed)
    gap, grace = rng.choice([(1_000, 0), (1_000, 3_000), (500, 10_000)])
    records = []
    now = 0
    for _ in range(120):
        now += rng.choice([0, 200, 500, 999, 1_000, 1_001, 1_500, 4_000])
        jitter = rng.choice([0, 0, 0, 300, 1_000, 2_500, 6_000])
        records.append((rng.choice("ab"), max(0, now - jitter)))
    # A day's retention: the reference knows no expiry (with Kafka's default, gap +
    # grace, an expired session no longer merges; see the store tests).
    materialized = Materialized.as_("s").with_retention(DAY)
    driver, got = session_count(
        SessionWindows.of_inactivity_gap_and_grace(gap, grace), materialized
    )
    with driver:
        pipe(driver, records)
        expected, late = reference_sessions(records, gap, grace)
        assert final_table(got) == expected
        assert driver.metrics.late_records == late
        store = {
            s(key, start, end): value
            for key, start, end, value in driver.get_state_store("s").all()
        }
        assert store == expected


# -- aggregate with a merger, reduce -----------------------------------------------------------


def test_aggregate_merges_the_sessions_aggregates_with_the_merger() -> None:
    got: list[Out] = []
    merges: list[tuple[Any, Any, Any]] = []

    def merger(key: str, first: list[str], second: list[str]) -> list[str]:
        merges.append((key, first, second))
        return first + second

    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
        .aggregate(
            list,
            lambda key, value, agg: [*agg, value],
            merger,
            Materialized.as_("s").with_value_serde(Serdes.Json()).with_retention(DAY),
        )
        .to_stream()
        .process(lambda: Collect(got))
    )
    with TopologyTestDriver(builder.build(), config()) as driver:
        source = driver.create_input_topic("in")
        for value, timestamp in [("p", 0), ("q", 10_000), ("r", 5_000)]:
            source.pipe_input("a", value, timestamp=timestamp)
        # Initializer, then each session merged in, by session end; then the record.
        assert merges == [("a", [], ["p"]), ("a", ["p"], ["q"])]
        assert got[-1] == (s("a", 0, 10_000), ["p", "q", "r"], 10_000)
        assert sessions(driver, "a") == [(0, 10_000, ["p", "q", "r"])]


def test_reduce_merges_sessions_with_the_reducer() -> None:
    got: list[Out] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .windowed_by(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
        .reduce(lambda agg, value: agg + value, Materialized.as_("s").with_retention(DAY))
        .to_stream()
        .process(lambda: Collect(got))
    )
    with TopologyTestDriver(builder.build(), config()) as driver:
        source = driver.create_input_topic("in")
        for value, timestamp in [("p", 0), ("q", 10_000), ("r", 5_000), ("s", 6_000)]:
            source.pipe_input("a", value, timestamp=timestamp)
        # reducer(reducer("p", "q"), "r"), then "s": Kafka's reduce merger.
        assert final_table(got) == {s("a", 0, 10_000): "pqrs"}


# -- the store --------------------------------------------------------------------------------


def test_the_store_is_a_session_store_that_can_be_queried() -> None:
    materialized = Materialized.as_("s").with_retention(DAY)
    driver, _ = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), materialized)
    with driver:
        pipe(driver, [("a", 0), ("b", 1_000), ("a", 2_000), ("a", 20_000)])
        store = driver.get_state_store("s")
        assert store.spec.kind == "session"
        assert list(store.find_sessions("a", 0, 30_000)) == [(0, 2_000, 2), (20_000, 20_000, 1)]
        # Sessions ending at or after 2000 and starting at or before 2000.
        assert list(store.find_sessions("a", 2_000, 2_000)) == [(0, 2_000, 2)]
        assert list(store.find_sessions("a", 2_001, 30_000)) == [(20_000, 20_000, 1)]
        assert store.fetch_session("a", 0, 2_000) == 2
        assert store.fetch_session("a", 0, 1_999) is None
        assert sorted(store.all()) == [
            ("a", 0, 2_000, 2),
            ("a", 20_000, 20_000, 1),
            ("b", 1_000, 1_000, 1),
        ]


def test_the_store_expires_sessions_by_the_largest_session_end_put() -> None:
    # InMemorySessionStore: the store's stream time is the largest session end put
    # (not the task's stream time); a session is gone once end <= that - retention.
    # Without a cache: a cached session is found until the cache evicts it.
    retention = 10_000
    materialized = Materialized.as_("s").with_retention(retention).with_caching_disabled()
    driver, _ = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), materialized)
    with driver:
        pipe(driver, [("a", 0), ("a", 3_000), ("b", 5_000)])
        pipe(driver, [("c", 13_000)])  # expiry: end <= 13000 - 10000
        assert sessions(driver, "a") == []
        assert sessions(driver, "b") == [(5_000, 5_000, 1)]
        pipe(driver, [(None, 40_000)])  # not put: the store's time stays
        assert sessions(driver, "b") == [(5_000, 5_000, 1)]
        pipe(driver, [("c", 15_000)])
        assert sessions(driver, "b") == []


def test_the_default_retention_is_gap_plus_grace() -> None:
    # SessionWindowedKStreamImpl: with no retention given, the store keeps gap + grace,
    # so a session that old is gone and no longer merges with a record reaching it.
    grace = 1_000
    materialized = Materialized.as_("s").with_caching_disabled()
    windows = SessionWindows.of_inactivity_gap_and_grace(GAP, grace)
    driver, got = session_count(windows, materialized)
    with driver:
        pipe(driver, [("a", 0), ("b", GAP + grace)])  # a's [0, 0]: 0 <= 6000 - 6000
        got.clear()
        pipe(driver, [("a", GAP)])  # within the gap of [0, 0], but that session is gone
        assert got == [(s("a", GAP, GAP), 1, GAP)]
        assert driver.metrics.late_records == 0


def test_in_memory_session_store_directly() -> None:
    store = InMemorySessionStore("direct", retention_ms=100)
    store.put("k", 10, 20, "x")
    store.put("k", 30, 30, "y")
    store.put("k", 25, 40, "overlapping")  # the store does not forbid it
    store.put("j", 0, 5, "z")
    assert list(store.fetch("k")) == [(10, 20, "x"), (30, 30, "y"), (25, 40, "overlapping")]
    assert list(store.find_sessions("k", 21, 30)) == [(30, 30, "y"), (25, 40, "overlapping")]
    assert list(store.find_sessions_ending_between(5, 30)) == [
        ("j", 0, 5, "z"),
        ("k", 10, 20, "x"),
        ("k", 30, 30, "y"),
    ]
    store.put("k", 30, 30, None)
    assert store.fetch_session("k", 30, 30) is None
    assert store.approximate_num_entries() == 3
    store.observe_stream_time(120)  # drops ends <= 20
    assert sorted(store.all()) == [("k", 25, 40, "overlapping")]
    store.put("k", 1, 19, "expired already")
    assert store.approximate_num_entries() == 1
    store.remove("k", 25, 40)
    assert list(store.all()) == []


def test_changelog_keys_follow_kafkas_session_key_schema() -> None:
    data = session_changelog_key(b"key", 10, 300)
    assert data == b"key" + (300).to_bytes(8, "big") + (10).to_bytes(8, "big")
    assert split_session_changelog_key(data) == (b"key", 10, 300)


def test_retention_must_cover_gap_and_grace() -> None:
    grouped = StreamsBuilder().stream("in").group_by_key()
    windowed = grouped.windowed_by(SessionWindows.of_inactivity_gap_and_grace(GAP, 1_000))
    assert isinstance(windowed, SessionWindowedKStream)
    with pytest.raises(TopologyError, match="retention"):
        windowed.count(Materialized.as_("s").with_retention(GAP + 999))
    windowed.count(Materialized.as_("ok").with_retention(GAP + 1_000))


def test_persistent_session_stores_are_refused() -> None:
    grouped = StreamsBuilder().stream("in").group_by_key()
    windowed = grouped.windowed_by(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
    with pytest.raises(TopologyError, match="persistent session stores"):
        windowed.count(Materialized.as_("s").persistent_store())


# -- caching ----------------------------------------------------------------------------------


def test_with_caching_a_session_created_and_merged_between_commits_is_never_forwarded() -> None:
    driver, got = session_count(
        SessionWindows.of_inactivity_gap_with_no_grace(GAP),
        Materialized.as_("s").with_retention(DAY),
        commit_every_record=False,
    )
    with driver:
        pipe(driver, [("a", 0), ("a", 20_000)])
        driver.commit()
        assert got == [(s("a", 0, 0), 1, 0), (s("a", 20_000, 20_000), 1, 20_000)]
        got.clear()
        # Each extends the session back; the last bridges it with [0, 0].
        pipe(driver, [("a", 16_000), ("a", 11_000), ("a", 6_000), ("a", 3_000)])
        assert got == []
        driver.commit()
        # [16000, 20000], [11000, 20000] and [6000, 20000] lived in the cache only: no
        # tombstones for them; the rest in the order of the latest writes.
        assert got == [
            (s("a", 20_000, 20_000), None, 20_000),
            (s("a", 0, 0), None, 0),
            (s("a", 0, 20_000), 6, 20_000),
        ]
        assert sessions(driver, "a") == [(0, 20_000, 6)]


def test_without_caching_every_change_is_forwarded_at_once() -> None:
    materialized = Materialized.as_("s").with_caching_disabled()
    driver, got = session_count(
        SessionWindows.of_inactivity_gap_with_no_grace(GAP), materialized, commit_every_record=False
    )
    with driver:
        pipe(driver, [("a", 0), ("a", 1_000), ("a", 500)])
        assert got == [
            (s("a", 0, 0), 1, 0),
            (s("a", 0, 0), None, 0),
            (s("a", 0, 1_000), 2, 1_000),
            # A record inside the session: removed, then put back (Kafka's rule).
            (s("a", 0, 1_000), None, 1_000),
            (s("a", 0, 1_000), 3, 1_000),
        ]


# -- through a repartition topic ---------------------------------------------------------------


def test_sessions_after_group_by_go_through_a_repartition_topic() -> None:
    got: list[Out] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by(lambda key, value: value, Grouped.as_("by-user"))
        .windowed_by(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
        .count(Materialized.as_("s").with_retention(DAY))
        .to_stream()
        .process(lambda: Collect(got))
    )
    topology = builder.build()
    assert set(topology.internal_topics) == {"by-user-repartition", "s-changelog"}
    with TopologyTestDriver(topology, config()) as driver:
        source = driver.create_input_topic("in")
        for key, user, timestamp in [
            ("p1", "ann", 0),
            ("p2", "bob", 1_000),
            ("p3", "ann", 4_000),
            ("p4", "ann", 12_000),
            ("p5", "ann", 8_000),
        ]:
            source.pipe_input(key, user, timestamp=timestamp)
        assert final_table(got) == {s("ann", 0, 12_000): 4, s("bob", 1_000, 1_000): 1}


# -- suppress(until_window_closes) -------------------------------------------------------------


def test_suppress_emits_each_session_once_after_end_plus_gap_plus_grace() -> None:
    grace = 1_000
    driver, got = session_count(
        SessionWindows.of_inactivity_gap_and_grace(GAP, grace), suppress=True
    )
    with driver:
        pipe(driver, [("a", 0), ("a", 2_000), ("b", 3_000)])
        # KTableSuppressProcessor: its stream time is the largest timestamp of the
        # updates it gets (session ends); it emits a session once its end <= that
        # stream time - grace - gap, so [0, 2000] at 8000.
        pipe(driver, [("c", 7_999)])
        assert got == []
        pipe(driver, [("c", 8_000)])
        assert got == [(s("a", 0, 2_000), 2, 2_000)]
        pipe(driver, [("c", 8_999)])
        assert got[1:] == []
        pipe(driver, [("c", 9_000)])  # session [7999, 9000]: its end is 9000
        assert got[1:] == [(s("b", 3_000, 3_000), 1, 3_000)]
        pipe(driver, [("d", 30_000)])
        assert got[2:] == [(s("c", 7_999, 9_000), 4, 9_000)]


def test_suppress_emits_closed_sessions_by_end_then_serialized_windowed_key() -> None:
    # The suppression buffer orders by (session end, key bytes + end + start), unsigned.
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), suppress=True)
    with driver:
        pipe(driver, [("b", 1_000), ("ab", 1_000), ("a", 1_000), ("a", 500), ("z", 600)])
        pipe(driver, [("c", 6_000)])
        assert got == [
            (s("z", 600, 600), 1, 600),
            (s("a", 500, 1_000), 2, 1_000),
            (s("ab", 1_000, 1_000), 1, 1_000),
            (s("b", 1_000, 1_000), 1, 1_000),
        ]


def test_suppress_emits_only_the_merged_session_not_the_ones_merged_away() -> None:
    windows = SessionWindows.of_inactivity_gap_and_grace(GAP, 10_000)
    driver, got = session_count(windows, suppress=True)
    with driver:
        pipe(driver, [("a", 0), ("a", 10_000), ("a", 5_000)])
        assert got == []
        pipe(driver, [("a", 40_000)])
        assert got == [(s("a", 0, 10_000), 3, 10_000)]
        assert driver.metrics.late_records == 0


def test_suppress_can_emit_a_session_that_a_late_record_later_merges_as_kafka_does() -> None:
    driver, got = session_count(SessionWindows.of_inactivity_gap_with_no_grace(GAP), suppress=True)
    with driver:
        # At 10000 the close time is 5000: [0, 0] is final and emitted.
        pipe(driver, [("a", 0), ("a", 10_000)])
        assert got == [(s("a", 0, 0), 1, 0)]
        # 5000 is more than gap + grace behind stream time, but its merged session
        # [0, 10000] ends after the close time: accepted (Kafka's rule), and it merges
        # the session emitted already, which Kafka Streams then emits once more, merged.
        pipe(driver, [("a", 5_000), ("a", 30_000)])
        assert got == [(s("a", 0, 0), 1, 0), (s("a", 0, 10_000), 3, 10_000)]


def test_suppress_on_a_derived_table_is_refused() -> None:
    table = (
        StreamsBuilder()
        .stream("in")
        .group_by_key()
        .windowed_by(SessionWindows.of_inactivity_gap_with_no_grace(GAP))
        .count()
        .filter(lambda key, value: True)
    )
    with pytest.raises(TopologyError, match="suppress"):
        table.suppress(Suppressed.until_window_closes())


# -- restore ----------------------------------------------------------------------------------


class _Sent:
    """A record sent to a changelog, consumable as a restore message."""

    def __init__(self, topic: str, key: bytes | None, value: bytes | None, offset: int) -> None:
        self._topic, self._key, self._value, self._offset = topic, key, value, offset

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class _Changelog:
    """A RecordSender that keeps what is sent, and a restore consumer that reads it back."""

    def __init__(self) -> None:
        self.sent: list[_Sent] = []
        self._position = 0

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Any,
        partition: int,
    ) -> None:
        self.sent.append(_Sent(topic, key, value, len(self.sent)))

    def partition_count(self, topic: str) -> int:
        return 1

    def get_watermark_offsets(self, tp: Any, timeout: float = 0) -> tuple[int, int]:
        return 0, len(self.sent)

    def assign(self, partitions: Any) -> None:
        self._position = 0

    def consume(self, num_messages: int, timeout: float) -> list[_Sent]:
        batch = self.sent[self._position : self._position + num_messages]
        self._position += len(batch)
        return batch

    def unassign(self) -> None:
        pass


def test_a_session_store_is_restored_from_its_changelog(tmp_path: Any) -> None:
    from topicflow.state.manager import StateManager
    from topicflow.state.stores import StoreSpec
    from topicflow.topology.nodes import RecordContext

    spec = StoreSpec(
        "s", "session", Serdes.String(), Serdes.Long(), retention_ms=DAY, caching=False
    )
    streams_config = config(state_dir=str(tmp_path))
    changelog = _Changelog()
    rc = RecordContext()
    manager = StateManager("0_0", 0, [spec], streams_config, changelog, rc)
    store: Any = manager.stores["s"]
    store.put("a", 0, 0, 1)
    store.put("a", 0, 0, None)
    store.put("a", 0, 4_000, 2)
    store.put("b", 100, 200, 7)
    assert {m.topic() for m in changelog.sent} == {"session-app-s-changelog"}
    assert changelog.sent[0].key() == session_changelog_key(b"a", 0, 0)

    restored = StateManager("0_0", 0, [spec], streams_config, _Changelog(), RecordContext())
    assert restored.restore(changelog) == 4  # type: ignore[arg-type]
    assert sorted(restored.stores["s"].all()) == [("a", 0, 4_000, 2), ("b", 100, 200, 7)]
