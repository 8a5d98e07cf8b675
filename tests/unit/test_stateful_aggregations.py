"""Stateful DSL: count, reduce and aggregate per key, KTable operations, builder.table.

Every expectation is computed in the test, by hand or by a brute-force replay of
the input; the TopologyTestDriver commits after every record (its default), so
each update reaches downstream at once, as with Kafka Streams' driver.
"""

from __future__ import annotations

import random
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from topicflow import Produced, Serdes, StreamsBuilder, StreamsConfig, TopologyError
from topicflow.dsl.options import Grouped, Materialized, Suppressed
from topicflow.testing import KeyValue, TopologyTestDriver

APP_ID = "agg-app"
LONG = Serdes.Long()
STRING = Serdes.String()
TO_LONG = Produced.with_(STRING, LONG)

Write = tuple[str, bytes | None, bytes | None, int]


def config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id=APP_ID,
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


def long_bytes(n: int) -> bytes:
    return struct.pack(">q", n)


def run_pairs(
    build: Callable[[StreamsBuilder], None],
    pairs: list[tuple[str | None, str | None]],
    out_value_serde: Any = LONG,
) -> tuple[list[KeyValue], TopologyTestDriver]:
    """Pipe (key, value) pairs into `in`; return what `out` got and the (open) driver."""
    builder = StreamsBuilder()
    build(builder)
    driver = TopologyTestDriver(builder.build(), config())
    source = driver.create_input_topic("in")
    for key, value in pairs:
        source.pipe_input(key, value)
    out = driver.create_output_topic("out", STRING, out_value_serde)
    return out.read_key_values_to_list(), driver


def random_pairs(seed: int, n: int, keys: int = 7) -> list[tuple[str | None, str | None]]:
    rng = random.Random(seed)
    return [(f"k{rng.randrange(keys)}", str(rng.randrange(-50, 100))) for _ in range(n)]


# -- count / reduce / aggregate per key (group_by_key: no repartition) ---------------------------


def test_count_by_key_emits_the_running_count_of_each_update() -> None:
    pairs = random_pairs(1, 300)
    got, driver = run_pairs(
        lambda b: (
            b.stream("in")
            .group_by_key()
            .count(Materialized.as_("counts"))
            .to_stream()
            .to("out", TO_LONG)
        ),
        pairs,
    )
    running: Counter[str] = Counter()
    expected = []
    for key, _value in pairs:
        assert key is not None
        running[key] += 1
        expected.append(KeyValue(key, running[key]))
    with driver:
        assert got == expected
        assert dict(driver.get_key_value_store("counts").all()) == dict(running)
        assert driver.get_key_value_store("counts").get("k0") == running["k0"]
        assert driver.metrics.dropped_records == 0


def test_reduce_by_key_starts_from_the_first_value() -> None:
    pairs = random_pairs(2, 300)
    got, driver = run_pairs(
        lambda b: (
            b.stream("in")
            .group_by_key()
            .reduce(lambda agg, v: str(int(agg) * 3 + int(v)), Materialized.as_("reduced"))
            .to_stream()
            .to("out")
        ),
        pairs,
        out_value_serde=STRING,
    )
    state: dict[str, int] = {}
    expected = []
    for key, value in pairs:
        assert key is not None and value is not None
        # Kafka's reduce: the first value is the aggregate as is (not reducer(init, v)).
        state[key] = int(value) if key not in state else state[key] * 3 + int(value)
        expected.append(KeyValue(key, str(state[key])))
    with driver:
        assert got == expected
        store = driver.get_key_value_store("reduced")
        assert dict(store.all()) == {k: str(v) for k, v in state.items()}


def test_reduce_first_value_is_not_passed_to_the_reducer() -> None:
    calls: list[tuple[str, str]] = []

    def reducer(agg: str, value: str) -> str:
        calls.append((agg, value))
        return agg + value

    got, driver = run_pairs(
        lambda b: b.stream("in").group_by_key().reduce(reducer).to_stream().to("out"),
        [("k", "a"), ("k", "b"), ("j", "x"), ("k", "c")],
        out_value_serde=STRING,
    )
    with driver:
        assert got == [("k", "a"), ("k", "ab"), ("j", "x"), ("k", "abc")]
        assert calls == [("a", "b"), ("ab", "c")]


def test_aggregate_by_key_sees_key_value_and_previous_aggregate() -> None:
    pairs = random_pairs(3, 200)
    got, driver = run_pairs(
        lambda b: (
            b.stream("in")
            .group_by_key()
            .aggregate(
                lambda: 1000,
                lambda key, value, agg: agg + int(value) * int(key[1:]),
                Materialized.as_("sums").with_value_serde(LONG),
            )
            .to_stream()
            .to("out", TO_LONG)
        ),
        pairs,
    )
    state: dict[str, int] = {}
    expected = []
    for key, value in pairs:
        assert key is not None and value is not None
        state[key] = state.get(key, 1000) + int(value) * int(key[1:])
        expected.append(KeyValue(key, state[key]))
    with driver:
        assert got == expected
        assert dict(driver.get_key_value_store("sums").all()) == state


def test_group_by_key_does_not_repartition() -> None:
    builder = StreamsBuilder()
    builder.stream("in").group_by_key().count(Materialized.as_("counts"))
    topology = builder.build()
    assert set(topology.internal_topics) == {"counts-changelog"}
    assert len(topology.subtopologies()) == 1


# -- group_by: through a repartition topic ---------------------------------------------------------


def test_count_group_by_value_through_repartition_matches_brute_force() -> None:
    rng = random.Random(4)
    words = ["apple", "banana", "cherry", "date", "elder", "fig"]
    pairs: list[tuple[str | None, str | None]] = [
        (rng.choice([None, "x", "y"]), rng.choice(words)) for _ in range(400)
    ]
    got, driver = run_pairs(
        lambda b: (
            b.stream("in")
            .group_by(lambda _k, v: v[0])
            .count(Materialized.as_("by-letter"))
            .to_stream()
            .to("out", TO_LONG)
        ),
        pairs,
    )
    running: Counter[str] = Counter()
    expected = []
    for _key, value in pairs:
        assert value is not None
        running[value[0]] += 1
        expected.append(KeyValue(value[0], running[value[0]]))
    with driver:
        # A null input key does not matter: group_by gives every record a new key.
        assert got == expected
        assert dict(driver.get_key_value_store("by-letter").all()) == dict(running)


def test_aggregate_group_by_through_repartition() -> None:
    pairs: list[tuple[str | None, str | None]] = [
        ("a", "one"),
        ("b", "three"),
        ("c", "two"),
        ("d", "seventeen"),
        ("e", "four"),
    ]
    got, driver = run_pairs(
        lambda b: (
            b.stream("in")
            .group_by(lambda _k, v: str(len(v) % 2))
            .aggregate(
                lambda: "",
                lambda key, value, agg: agg + value[0],
                Materialized.as_("initials"),
            )
            .to_stream()
            .to("out")
        ),
        pairs,
        out_value_serde=STRING,
    )
    with driver:
        # odd lengths: one(3), three(5), two(3), seventeen(9); even: four(4)
        assert got == [("1", "o"), ("1", "ot"), ("1", "ott"), ("1", "otts"), ("0", "f")]
        assert dict(driver.get_key_value_store("initials").all()) == {"1": "otts", "0": "f"}


# -- null keys and values ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["count", "reduce", "aggregate"])
def test_null_keys_and_values_are_dropped_and_counted(kind: str) -> None:
    def build(b: StreamsBuilder) -> None:
        grouped = b.stream("in").group_by_key()
        if kind == "count":
            table = grouped.count(Materialized.as_("s"))
        elif kind == "reduce":
            table = grouped.reduce(lambda a, v: str(int(a) + int(v)), Materialized.as_("s"))
        else:
            table = grouped.aggregate(
                lambda: "0", lambda _k, v, a: str(int(a) + int(v)), Materialized.as_("s")
            )
        table.to_stream().map_values(int).to("out", TO_LONG)

    pairs: list[tuple[str | None, str | None]] = [
        ("k", "5"),
        (None, "7"),
        ("k", None),
        ("j", "1"),
        (None, None),
        ("k", "2"),
    ]
    got, driver = run_pairs(build, pairs)
    with driver:
        if kind == "count":
            assert got == [("k", 1), ("j", 1), ("k", 2)]
            assert dict(driver.get_key_value_store("s").all()) == {"k": 2, "j": 1}
        else:
            assert got == [("k", 5), ("j", 1), ("k", 7)]
            assert dict(driver.get_key_value_store("s").all()) == {"k": "7", "j": "1"}
        assert driver.metrics.dropped_records == 3


def test_group_by_to_a_null_key_is_filtered_before_the_repartition_topic() -> None:
    """A null grouping key cannot be partitioned: the record never reaches the topic.

    As in Kafka Streams, that filter is silent (no dropped-records metric), while a
    null value travels through the repartition topic and is dropped (and counted)
    by the aggregation.
    """
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by(lambda k, _v: None if k == "none" else k)
        .count(Materialized.as_("c"))
        .to_stream()
        .to("out", TO_LONG)
    )
    with TopologyTestDriver(builder.build(), config()) as driver:
        writes = spy_writes(driver)
        source = driver.create_input_topic("in")
        source.pipe_input("none", "x")
        source.pipe_input("k", None)
        source.pipe_input("k", "y")
        out = driver.create_output_topic("out", STRING, LONG)
        assert out.read_key_values_to_list() == [("k", 1)]
        repartition = f"{APP_ID}-c-repartition"
        assert [(w[1], w[2]) for w in writes if w[0] == repartition] == [(b"k", None), (b"k", b"y")]
        assert driver.metrics.dropped_records == 1  # the null value, at the aggregation


# -- internal topics: names, and what is written to them -------------------------------------------


def test_repartition_and_changelog_are_named_after_the_store() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by(lambda _k, v: v)
        .count(Materialized.as_("word-counts"))
        .to_stream()
        .to("out", TO_LONG)
    )
    topology = builder.build()
    assert {name: t.kind for name, t in topology.internal_topics.items()} == {
        "word-counts-repartition": "repartition",
        "word-counts-changelog": "changelog",
    }
    full = {t.full_name(APP_ID) for t in topology.internal_topics.values()}
    assert full == {"agg-app-word-counts-repartition", "agg-app-word-counts-changelog"}
    assert topology.internal_topics["word-counts-changelog"].config == {"cleanup.policy": "compact"}

    with TopologyTestDriver(topology, config()) as driver:
        writes = spy_writes(driver)
        source = driver.create_input_topic("in")
        for word in ["a", "b", "a"]:
            source.pipe_input(None, word)
        # Internal writes happen, under their full names...
        assert writes == [
            ("agg-app-word-counts-repartition", b"a", b"a", 0),
            ("agg-app-word-counts-changelog", b"a", long_bytes(1), 0),
            ("out", b"a", long_bytes(1), 0),
            ("agg-app-word-counts-repartition", b"b", b"b", 0),
            ("agg-app-word-counts-changelog", b"b", long_bytes(1), 0),
            ("out", b"b", long_bytes(1), 0),
            ("agg-app-word-counts-repartition", b"a", b"a", 0),
            ("agg-app-word-counts-changelog", b"a", long_bytes(2), 0),
            ("out", b"a", long_bytes(2), 0),
        ]
        # ...but the driver lists only user topics (Kafka's producedTopicNames() lists
        # internal topics too): internal output is not readable as an output topic.
        assert driver.producer_topics() == ["out"]
        assert driver.create_output_topic("agg-app-word-counts-changelog").is_empty()


def test_grouped_name_names_the_repartition_topic_not_the_changelog() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by(lambda _k, v: v, Grouped.as_("by-word"))
        .count(Materialized.as_("word-counts"))
    )
    topology = builder.build()
    assert set(topology.internal_topics) == {"by-word-repartition", "word-counts-changelog"}
    with TopologyTestDriver(topology, config()) as driver:
        writes = spy_writes(driver)
        driver.create_input_topic("in").pipe_input("k", "w")
        assert [w[0] for w in writes] == [
            "agg-app-by-word-repartition",
            "agg-app-word-counts-changelog",
        ]


def test_select_key_then_group_by_key_repartitions() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .select_key(lambda _k, v: v.upper())
        .group_by_key()
        .count(Materialized.as_("upper"))
        .to_stream()
        .to("out", TO_LONG)
    )
    topology = builder.build()
    assert "upper-repartition" in topology.internal_topics
    with TopologyTestDriver(topology, config()) as driver:
        source = driver.create_input_topic("in")
        for value in ["a", "b", "A"]:
            source.pipe_input("ignored", value)
        assert driver.create_output_topic("out", STRING, LONG).read_key_values_to_list() == [
            ("A", 1),
            ("B", 1),
            ("A", 2),
        ]


def test_unnamed_aggregation_gets_generated_internal_topic_names() -> None:
    builder = StreamsBuilder()
    builder.stream("in").group_by(lambda _k, v: v).count()
    topology = builder.build()
    names = set(topology.internal_topics)
    assert len(names) == 2
    (repartition,) = [n for n in names if n.endswith("-repartition")]
    (changelog,) = [n for n in names if n.endswith("-changelog")]
    store = changelog.removesuffix("-changelog")
    assert store.startswith("KSTREAM-AGGREGATE-STATE-STORE-")
    assert repartition == f"{store}-repartition"
    assert set(topology.state_stores) == {store}


def test_logging_disabled_means_no_changelog_topic_and_no_changelog_writes() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .group_by_key()
        .count(Materialized.as_("quiet").with_logging_disabled())
        .to_stream()
        .to("out", TO_LONG)
    )
    topology = builder.build()
    assert topology.internal_topics == {}
    with TopologyTestDriver(topology, config()) as driver:
        writes = spy_writes(driver)
        driver.create_input_topic("in").pipe_input("k", "v")
        assert [w[0] for w in writes] == ["out"]
        assert dict(driver.get_key_value_store("quiet").all()) == {"k": 1}


def test_changelog_holds_every_committed_value_of_the_store() -> None:
    pairs = random_pairs(5, 200, keys=5)
    builder = StreamsBuilder()
    builder.stream("in").group_by_key().count(Materialized.as_("c"))
    with TopologyTestDriver(builder.build(), config()) as driver:
        writes = spy_writes(driver)
        source = driver.create_input_topic("in")
        for key, value in pairs:
            source.pipe_input(key, value)
        changelog = [(k, v) for topic, k, v, _ in writes if topic == "agg-app-c-changelog"]
        running: Counter[str] = Counter()
        expected = []
        for key, _ in pairs:
            assert key is not None
            running[key] += 1
            expected.append((key.encode(), long_bytes(running[key])))
        assert changelog == expected
        # "Compacting" the changelog gives the store.
        compacted = {k.decode(): LONG.deserialize(v) for k, v in changelog if k is not None}
        assert compacted == dict(driver.get_key_value_store("c").all())


def test_get_key_value_store_rejects_unknown_names() -> None:
    builder = StreamsBuilder()
    builder.stream("in").group_by_key().count(Materialized.as_("c"))
    with TopologyTestDriver(builder.build(), config()) as driver:
        with pytest.raises(TopologyError, match="no state store 'nope'"):
            driver.get_key_value_store("nope")
        with pytest.raises(TopologyError, match="not a window store"):
            driver.get_window_store("c")


# -- KTable operations ---------------------------------------------------------------------------


def counts_then(
    pairs: list[tuple[str | None, str | None]],
    then: Callable[[Any], Any],
    out_value_serde: Any = LONG,
) -> list[KeyValue]:
    got, driver = run_pairs(
        lambda b: (
            then(b.stream("in").group_by_key().count())
            .to_stream()
            .to("out", Produced.with_(STRING, out_value_serde))
        ),
        pairs,
        out_value_serde,
    )
    driver.close()
    return got


def expected_counts(pairs: list[tuple[str | None, str | None]]) -> list[tuple[str, int]]:
    running: Counter[str] = Counter()
    result = []
    for key, _ in pairs:
        assert key is not None
        running[key] += 1
        result.append((key, running[key]))
    return result


def filtered_counts(
    pairs: list[tuple[str | None, str | None]], keep: Callable[[int], bool]
) -> list[KeyValue]:
    """What Kafka Streams' KTableFilter forwards below a cached count: the filtered new
    value with the filtered old one (the count the store held, none for a key's
    first); an update whose new and old values both fail changes nothing and is
    dropped, one whose new value fails and old passed is a tombstone."""
    expected = []
    for key, count in expected_counts(pairs):
        new = count if keep(count) else None
        old = count - 1 if count > 1 and keep(count - 1) else None
        if new is not None or old is not None:
            expected.append(KeyValue(key, new))
    return expected


def test_ktable_filter_turns_failing_updates_into_tombstones() -> None:
    pairs = random_pairs(6, 150)
    got = counts_then(pairs, lambda t: t.filter(lambda _k, count: count % 3 == 0))
    assert got == filtered_counts(pairs, lambda c: c % 3 == 0)
    assert any(v is None for _, v in got) and any(v is not None for _, v in got)
    # Updates that failed the filter before and after are not forwarded at all.
    assert len(got) < len(pairs)


def test_ktable_filter_not_is_the_complement() -> None:
    pairs = random_pairs(7, 150)
    got = counts_then(pairs, lambda t: t.filter_not(lambda _k, count: count % 3 == 0))
    assert got == filtered_counts(pairs, lambda c: c % 3 != 0)
    assert any(v is None for _, v in got)


def test_ktable_filter_predicate_sees_the_key() -> None:
    pairs: list[tuple[str | None, str | None]] = [("a", "1"), ("b", "1"), ("a", "1")]
    got = counts_then(pairs, lambda t: t.filter(lambda k, _c: k == "a"))
    # b's update fails with no old value that passed: nothing to tell downstream.
    assert got == [("a", 1), ("a", 2)]


def test_ktable_map_values_maps_updates_and_passes_tombstones() -> None:
    pairs = random_pairs(8, 100)
    got = counts_then(
        pairs,
        lambda t: t.filter(lambda _k, c: c % 2 == 1).map_values(lambda c: f"#{c * 10}"),
        out_value_serde=STRING,
    )
    expected = [
        KeyValue(k, f"#{c * 10}" if c % 2 == 1 else None) for k, c in expected_counts(pairs)
    ]
    assert got == expected


def test_ktable_map_values_with_key() -> None:
    pairs: list[tuple[str | None, str | None]] = [("a", "x"), ("b", "x"), ("a", "x")]
    got = counts_then(pairs, lambda t: t.map_values(lambda k, c: f"{k}={c}", with_key=True), STRING)
    assert got == [("a", "a=1"), ("b", "b=1"), ("a", "a=2")]


def test_suppress_is_refused_on_a_non_windowed_table() -> None:
    builder = StreamsBuilder()
    table = builder.stream("in").group_by_key().count()
    with pytest.raises(TopologyError, match="suppress"):
        table.suppress(Suppressed.until_window_closes())


# -- builder.table -------------------------------------------------------------------------------


def test_builder_table_keeps_the_latest_value_per_key_and_null_deletes() -> None:
    rng = random.Random(9)
    updates: list[tuple[str | None, str | None]] = [
        (f"u{rng.randrange(6)}", None if rng.random() < 0.2 else f"v{i}") for i in range(300)
    ]
    builder = StreamsBuilder()
    table = builder.table("users", materialized=Materialized.as_("users-store"))
    table.to_stream().to("out")
    topology = builder.build()
    assert table.queryable_store_name == "users-store"
    assert set(topology.internal_topics) == {"users-store-changelog"}
    with TopologyTestDriver(topology, config()) as driver:
        source = driver.create_input_topic("users")
        latest: dict[str, str] = {}
        expected: list[KeyValue] = []
        for i, (key, value) in enumerate(updates):
            source.pipe_input(key, value, timestamp=i)
            assert key is not None
            if value is None:
                # The store is cached (Kafka's default): deleting a key it does
                # not hold is not forwarded (CachingKeyValueStore's flush).
                if latest.pop(key, None) is not None:
                    expected.append(KeyValue(key, None))
            else:
                latest[key] = value
                expected.append(KeyValue(key, value))
        store = driver.get_key_value_store("users-store")
        assert dict(store.all()) == latest
        for key in {k for k, _ in updates if k is not None}:
            assert store.get(key) == latest.get(key)
        # Every update and every real deletion flows downstream in order.
        out = driver.create_output_topic("out").read_key_values_to_list()
        assert out == expected
        assert any(v is None for _, v in expected)
        assert len(expected) < len(updates)


def test_builder_table_drops_null_keys() -> None:
    builder = StreamsBuilder()
    builder.table("t", materialized=Materialized.as_("t-store")).to_stream().to("out")
    with TopologyTestDriver(builder.build(), config()) as driver:
        source = driver.create_input_topic("t")
        source.pipe_input(None, "orphan")
        source.pipe_input("k", "v")
        assert driver.create_output_topic("out").read_key_values_to_list() == [("k", "v")]
        assert dict(driver.get_key_value_store("t-store").all()) == {"k": "v"}
        assert driver.metrics.dropped_records == 1


def test_builder_table_changelog_records_each_update() -> None:
    builder = StreamsBuilder()
    builder.table("t", materialized=Materialized.as_("t-store"))
    with TopologyTestDriver(builder.build(), config()) as driver:
        writes = spy_writes(driver)
        source = driver.create_input_topic("t")
        source.pipe_input("k", "1", timestamp=5)
        source.pipe_input("k", None, timestamp=6)
        assert writes == [
            ("agg-app-t-store-changelog", b"k", b"1", 5),
            ("agg-app-t-store-changelog", b"k", None, 6),
        ]


def test_builder_table_without_materialized_has_no_store() -> None:
    builder = StreamsBuilder()
    table = builder.table("t")
    table.filter(lambda _k, v: v != "drop").to_stream().to("out")
    topology = builder.build()
    assert table.queryable_store_name is None
    assert topology.state_stores == {}
    assert topology.internal_topics == {}
    with TopologyTestDriver(topology, config()) as driver:
        source = driver.create_input_topic("t")
        source.pipe_input("a", "keep")
        source.pipe_input("a", "drop")
        assert driver.create_output_topic("out").read_key_values_to_list() == [
            ("a", "keep"),
            ("a", None),
        ]
