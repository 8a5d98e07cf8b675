"""Every stateless DSL operation, run record by record on the TopologyTestDriver."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from topicflow import (
    Branched,
    KStream,
    Named,
    Processor,
    ProcessorContext,
    Produced,
    Record,
    Repartitioned,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    TopologyError,
)

# Imported under another name: pytest would try to collect a `Test*` class.
from topicflow.testing import KeyValue, TopologyTestDriver
from topicflow.testing import TestRecord as OutRecord

APP_ID = "dsl-test"


def string_config(**overrides: Any) -> StreamsConfig:
    return StreamsConfig(
        application_id=APP_ID,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        **overrides,
    )


def run(
    build: Callable[[StreamsBuilder], None],
    inputs: list[tuple[str | None, str | None]],
    outputs: tuple[str, ...] = ("out",),
    input_topic: str = "in",
) -> dict[str, list[KeyValue]]:
    """Build with `build`, pipe `inputs` into `input_topic`, return what each output topic got."""
    builder = StreamsBuilder()
    build(builder)
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        source = driver.create_input_topic(input_topic)
        for key, value in inputs:
            source.pipe_input(key, value)
        return {t: driver.create_output_topic(t).read_key_values_to_list() for t in outputs}


def kvs(*pairs: tuple[Any, Any]) -> list[KeyValue]:
    return [KeyValue(k, v) for k, v in pairs]


NUMBERS = [(f"k{i}", str(i)) for i in range(1, 8)]


# -- filter / filter_not -------------------------------------------------------------------------


def test_filter_keeps_records_matching_the_predicate() -> None:
    got = run(lambda b: b.stream("in").filter(lambda k, v: int(v) % 2 == 0).to("out"), NUMBERS)
    assert got["out"] == kvs(("k2", "2"), ("k4", "4"), ("k6", "6"))


def test_filter_not_drops_records_matching_the_predicate() -> None:
    got = run(lambda b: b.stream("in").filter_not(lambda k, v: int(v) % 2 == 0).to("out"), NUMBERS)
    assert got["out"] == kvs(("k1", "1"), ("k3", "3"), ("k5", "5"), ("k7", "7"))


def test_filter_predicate_sees_key_and_value() -> None:
    got = run(
        lambda b: b.stream("in").filter(lambda k, v: k == "k3" or v == "5").to("out"), NUMBERS
    )
    assert got["out"] == kvs(("k3", "3"), ("k5", "5"))


# -- map / map_values ----------------------------------------------------------------------------


def test_map_changes_key_and_value() -> None:
    got = run(lambda b: b.stream("in").map(lambda k, v: (v, k.upper())).to("out"), NUMBERS[:3])
    assert got["out"] == kvs(("1", "K1"), ("2", "K2"), ("3", "K3"))


def test_map_values_with_value_only() -> None:
    got = run(lambda b: b.stream("in").map_values(lambda v: v * 3).to("out"), NUMBERS[:3])
    assert got["out"] == kvs(("k1", "111"), ("k2", "222"), ("k3", "333"))


def test_map_values_with_key() -> None:
    got = run(
        lambda b: b.stream("in").map_values(lambda k, v: f"{k}={v}", with_key=True).to("out"),
        NUMBERS[:2],
    )
    assert got["out"] == kvs(("k1", "k1=1"), ("k2", "k2=2"))


# -- flat_map / flat_map_values -----------------------------------------------------------------


def test_flat_map_emits_every_pair_in_order() -> None:
    def explode(key: str, value: str) -> list[tuple[str, str]]:
        return [(f"{key}.{i}", ch) for i, ch in enumerate(value)]

    got = run(lambda b: b.stream("in").flat_map(explode).to("out"), [("a", "xyz"), ("b", "")])
    assert got["out"] == kvs(("a.0", "x"), ("a.1", "y"), ("a.2", "z"))


def test_flat_map_accepts_a_generator() -> None:
    got = run(
        lambda b: b.stream("in").flat_map(lambda k, v: ((k, w) for w in v.split())).to("out"),
        [("k", "one two")],
    )
    assert got["out"] == kvs(("k", "one"), ("k", "two"))


def test_flat_map_values_with_value_only_including_empty_iterables() -> None:
    inputs = [("a", "one two"), ("b", ""), ("c", "   "), ("d", "three")]
    got = run(lambda b: b.stream("in").flat_map_values(str.split).to("out"), inputs)
    assert got["out"] == kvs(("a", "one"), ("a", "two"), ("d", "three"))


def test_flat_map_values_with_key() -> None:
    got = run(
        lambda b: (
            b.stream("in").flat_map_values(lambda k, v: [k] * int(v), with_key=True).to("out")
        ),
        [("x", "2"), ("y", "0"), ("z", "1")],
    )
    assert got["out"] == kvs(("x", "x"), ("x", "x"), ("z", "z"))


# -- select_key / peek / foreach ----------------------------------------------------------------


def test_select_key_replaces_the_key_only() -> None:
    got = run(
        lambda b: b.stream("in").select_key(lambda k, v: f"len{len(v)}").to("out"),
        [("a", "xx"), ("b", "yyy"), (None, "")],
    )
    assert got["out"] == kvs(("len2", "xx"), ("len3", "yyy"), ("len0", ""))


def test_peek_sees_every_record_and_forwards_it_unchanged() -> None:
    seen: list[tuple[str, str]] = []
    got = run(
        lambda b: b.stream("in").peek(lambda k, v: seen.append((k, v))).to("out"), NUMBERS[:4]
    )
    assert seen == NUMBERS[:4]
    assert got["out"] == kvs(*NUMBERS[:4])


def test_foreach_is_terminal_and_writes_nothing() -> None:
    seen: list[tuple[str, str]] = []
    builder = StreamsBuilder()
    builder.stream("in").foreach(lambda k, v: seen.append((k, v)))
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        source = driver.create_input_topic("in")
        for key, value in NUMBERS:
            source.pipe_input(key, value)
        assert driver.producer_topics() == []
    assert seen == NUMBERS


def test_foreach_returns_no_stream() -> None:
    builder = StreamsBuilder()
    result: Any = builder.stream("in").foreach(lambda k, v: None)
    assert result is None


# -- merge --------------------------------------------------------------------------------------


def test_merge_of_two_source_topics_keeps_arrival_order() -> None:
    builder = StreamsBuilder()
    left = builder.stream("left")
    right = builder.stream("right").map_values(str.upper)
    left.merge(right).to("out")
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        left_in = driver.create_input_topic("left")
        right_in = driver.create_input_topic("right")
        left_in.pipe_input("l1", "a")
        right_in.pipe_input("r1", "b")
        right_in.pipe_input("r2", "c")
        left_in.pipe_input("l2", "d")
        out = driver.create_output_topic("out").read_key_values_to_list()
    assert out == kvs(("l1", "a"), ("r1", "B"), ("r2", "C"), ("l2", "d"))


def test_merge_of_streams_from_different_builders_is_refused() -> None:
    one, other = StreamsBuilder(), StreamsBuilder()
    with pytest.raises(TopologyError, match="same StreamsBuilder"):
        one.stream("a").merge(other.stream("b"))


def test_stream_of_several_topics() -> None:
    builder = StreamsBuilder()
    builder.stream(["t1", "t2"]).map_values(lambda v: v + "!").to("out")
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("t2").pipe_input("b", "2")
        driver.create_input_topic("t1").pipe_input("a", "1")
        out = driver.create_output_topic("out").read_key_values_to_list()
    assert out == kvs(("b", "2!"), ("a", "1!"))


# -- split -------------------------------------------------------------------------------------


def test_split_with_named_and_unnamed_branches_and_a_default() -> None:
    branches: dict[str, KStream[Any, Any]] = {}

    def build(b: StreamsBuilder) -> None:
        branches.update(
            b.stream("in")
            .split(Named.as_("s-"))
            .branch(lambda k, v: int(v) % 3 == 0, Branched.as_("fizz"))
            .branch(lambda k, v: int(v) % 2 == 0)
            .default_branch()
        )
        branches["s-fizz"].to("fizz")
        branches["s-2"].to("even")
        branches["s-0"].to("rest")

    got = run(build, NUMBERS, outputs=("fizz", "even", "rest"))
    assert sorted(branches) == ["s-0", "s-2", "s-fizz"]
    # 6 matches both predicates: the first matching branch wins, and only it.
    assert got["fizz"] == kvs(("k3", "3"), ("k6", "6"))
    assert got["even"] == kvs(("k2", "2"), ("k4", "4"))
    assert got["rest"] == kvs(("k1", "1"), ("k5", "5"), ("k7", "7"))


def test_split_branch_names_use_the_split_name_as_prefix() -> None:
    builder = StreamsBuilder()
    result = (
        builder.stream("in")
        .split(Named.as_("route-"))
        .branch(lambda k, v: True, Branched.as_("a"))
        .branch(lambda k, v: True)
        .branch(lambda k, v: True, Branched.as_("c"))
        .default_branch(Branched.as_("other"))
    )
    assert sorted(result) == ["route-2", "route-a", "route-c", "route-other"]


def test_no_default_branch_drops_records_matching_nothing() -> None:
    def build(b: StreamsBuilder) -> None:
        result = (
            b.stream("in")
            .split(Named.as_("s-"))
            .branch(lambda k, v: v.startswith("a"), Branched.as_("a"))
            .branch(lambda k, v: v.startswith("b"), Branched.as_("b"))
            .no_default_branch()
        )
        assert sorted(result) == ["s-a", "s-b"]
        result["s-a"].to("out-a")
        result["s-b"].to("out-b")

    builder = StreamsBuilder()
    build(builder)
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        source = driver.create_input_topic("in")
        for key, value in [("1", "apple"), ("2", "cherry"), ("3", "banana"), ("4", "avocado")]:
            source.pipe_input(key, value)
        assert driver.create_output_topic("out-a").read_values_to_list() == ["apple", "avocado"]
        assert driver.create_output_topic("out-b").read_values_to_list() == ["banana"]
        assert driver.producer_topics() == ["out-a", "out-b"]
        assert driver.metrics.records_consumed == 4


def test_first_matching_branch_wins_even_when_later_ones_match_too() -> None:
    hits: list[str] = []

    def build(b: StreamsBuilder) -> None:
        result = (
            b.stream("in")
            .split(Named.as_("s-"))
            .branch(lambda k, v: v == "x", Branched.as_("x"))
            .branch(lambda k, v: hits.append(v) is None, Branched.as_("all"))
            .default_branch(Branched.as_("never"))
        )
        result["s-x"].to("x")
        result["s-all"].to("all")
        result["s-never"].to("never")

    got = run(build, [("1", "x"), ("2", "y"), ("3", "x")], outputs=("x", "all", "never"))
    assert got["x"] == kvs(("1", "x"), ("3", "x"))
    assert got["all"] == kvs(("2", "y"))
    assert got["never"] == []
    # Later predicates are not even evaluated once an earlier one matched.
    assert hits == ["y"]


def test_branched_with_function_and_with_consumer() -> None:
    result: dict[str, KStream[Any, Any]] = {}

    def build(b: StreamsBuilder) -> None:
        result.update(
            b.stream("in")
            .split(Named.as_("s-"))
            .branch(
                lambda k, v: v.islower(),
                Branched.with_function(lambda s: s.map_values(str.upper), "lower"),
            )
            .branch(
                lambda k, v: v.isdigit(),
                Branched.with_consumer(lambda s: s.to("digits"), "digits"),
            )
            .branch(lambda k, v: v == "DROP", Branched.with_function(lambda s: None, "gone"))
            .default_branch(Branched.with_function(lambda s: s.map_values(lambda v: f"<{v}>")))
        )
        result["s-lower"].to("upper")
        result["s-0"].to("other")

    got = run(
        build,
        [("1", "abc"), ("2", "123"), ("3", "MiXed"), ("4", "DROP"), ("5", "xyz")],
        outputs=("upper", "digits", "other"),
    )
    # with_function's stream (the transformed one) is returned; a consumer's or a None
    # function's branch is not.
    assert sorted(result) == ["s-0", "s-lower"]
    assert got["upper"] == kvs(("1", "ABC"), ("5", "XYZ"))
    assert got["digits"] == kvs(("2", "123"))
    assert got["other"] == kvs(("3", "<MiXed>"))


def test_unnamed_split_branches_are_keyed_by_generated_names() -> None:
    builder = StreamsBuilder()
    result = builder.stream("in").split().branch(lambda k, v: True).default_branch()
    assert len(result) == 2
    assert all(name.startswith("KSTREAM-BRANCH-0000000001") for name in result)


def test_unnamed_split_branch_names_match_kafka_streams() -> None:
    builder = StreamsBuilder()
    result = builder.stream("in").split().branch(lambda k, v: True).default_branch()
    assert sorted(result) == ["KSTREAM-BRANCH-00000000010", "KSTREAM-BRANCH-00000000011"]


def test_finished_split_refuses_more_branches() -> None:
    builder = StreamsBuilder()
    split = builder.stream("in").split(Named.as_("s-")).branch(lambda k, v: True)
    split.no_default_branch()
    with pytest.raises(TopologyError, match="split"):
        split.branch(lambda k, v: True)
    with pytest.raises(TopologyError, match="split"):
        split.default_branch()


# -- to() -------------------------------------------------------------------------------------


def test_to_with_a_topic_name_extractor_routes_per_record() -> None:
    def by_parity(key: Any, value: Any, record_context: Any) -> str:
        return "even" if int(value) % 2 == 0 else "odd"

    got = run(lambda b: b.stream("in").to(by_parity), NUMBERS[:5], outputs=("even", "odd"))
    assert got["even"] == kvs(("k2", "2"), ("k4", "4"))
    assert got["odd"] == kvs(("k1", "1"), ("k3", "3"), ("k5", "5"))


def test_topic_name_extractor_sees_the_source_topic() -> None:
    got = run(
        lambda b: b.stream("in").to(lambda k, v, rc: f"{rc.topic()}-copy"),
        [("a", "1")],
        outputs=("in-copy",),
    )
    assert got["in-copy"] == kvs(("a", "1"))


def test_to_with_produced_serdes_overrides_the_defaults() -> None:
    builder = StreamsBuilder()
    lengths = builder.stream("in").map(lambda k, v: (len(k), len(v)))
    lengths.to("lengths", Produced.with_(Serdes.Integer(), Serdes.Long()))
    builder.stream("in2").to("plain")
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("key", "hello")
        driver.create_input_topic("in2").pipe_input("key", "hello")
        raw = driver.create_output_topic("lengths", Serdes.Bytes(), Serdes.Bytes()).read_record()
        plain = driver.create_output_topic("plain", Serdes.Bytes(), Serdes.Bytes()).read_record()
    assert raw.key == (3).to_bytes(4, "big")
    assert raw.value == (5).to_bytes(8, "big")
    # The other sink still uses the default (String) serdes.
    assert (plain.key, plain.value) == (b"key", b"hello")


def test_produced_value_serde_only() -> None:
    builder = StreamsBuilder()
    builder.stream("in").map_values(len).to("out", Produced(value_serde=Serdes.Long()))
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "abc")
        out = driver.create_output_topic("out", Serdes.String(), Serdes.Long()).read_key_value()
    assert out == KeyValue("k", 3)


def test_produced_name_names_the_sink() -> None:
    builder = StreamsBuilder()
    builder.stream("in").to("out", Produced.as_("my-sink"))
    assert "my-sink" in builder.build().nodes


# -- repartition() --------------------------------------------------------------------------------


class TopicRecorder(Processor[Any, Any, Any, Any]):
    """Forwards every record and notes the topic it was read from."""

    def __init__(self, topics: list[str | None]) -> None:
        self.topics = topics

    def init(self, context: ProcessorContext[Any, Any]) -> None:
        self.context = context

    def process(self, record: Record[Any, Any]) -> None:
        self.topics.append(record.topic)
        self.context.forward(record)


def test_repartition_goes_through_the_internal_topic_and_continues() -> None:
    topics: list[str | None] = []
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .select_key(lambda k, v: v.split()[0])
        .repartition(Repartitioned.as_("by-word"))
        .process(lambda: TopicRecorder(topics))
        .map_values(str.upper)
        .to("out")
    )
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("1", "hello world")
        source.pipe_input("2", "bye now")
        out = driver.create_output_topic("out").read_key_values_to_list()
        assert driver.producer_topics() == ["out"]
    assert out == kvs(("hello", "HELLO WORLD"), ("bye", "BYE NOW"))
    assert topics == ["dsl-test-by-word-repartition"] * 2


def test_unnamed_repartition_topic_name() -> None:
    topics: list[str | None] = []
    builder = StreamsBuilder()
    builder.stream("in").repartition().process(lambda: TopicRecorder(topics)).to("out")
    topology = builder.build()
    assert list(topology.internal_topics) == ["KSTREAM-REPARTITION-0000000001-repartition"]
    with TopologyTestDriver(topology, string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v")
        assert driver.create_output_topic("out").read_key_values_to_list() == kvs(("k", "v"))
        assert driver.producer_topics() == ["out"]
    assert topics == [f"{APP_ID}-KSTREAM-REPARTITION-0000000001-repartition"]


def test_repartition_with_its_own_serdes() -> None:
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .map(lambda k, v: (int(k), int(v)))
        .repartition(Repartitioned(Serdes.Integer(), Serdes.Long(), name="nums"))
        .map(lambda k, v: (str(k * 10), str(v + 1)))
        .to("out")
    )
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("4", "41")
        assert driver.create_output_topic("out").read_key_values_to_list() == kvs(("40", "42"))


def test_repartition_topic_is_not_a_user_output() -> None:
    builder = StreamsBuilder()
    builder.stream("in").repartition(Repartitioned.as_("r")).to("out")
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        driver.create_input_topic("in").pipe_input("k", "v")
        internal = driver.create_output_topic(f"{APP_ID}-r-repartition")
        assert internal.is_empty()
        assert driver.producer_topics() == ["out"]


# -- process() with a user Processor --------------------------------------------------------------


class Shout(Processor[str, str, str, str]):
    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context

    def process(self, record: Record[str, str]) -> None:
        self.context.forward(record.with_key(record.key.upper()).with_value(record.value + "!"))
        if record.value == "twice":
            self.context.forward(record.with_value("again"))


def test_process_forwards_modified_records_to_every_child() -> None:
    def build(b: StreamsBuilder) -> None:
        shouted = b.stream("in").process(Shout, named="shout")
        shouted.to("all")
        shouted.filter(lambda k, v: v.startswith("a")).to("starts-with-a")

    got = run(
        build,
        [("a", "apple"), ("b", "twice"), ("c", "cherry")],
        outputs=("all", "starts-with-a"),
    )
    assert got["all"] == kvs(("A", "apple!"), ("B", "twice!"), ("b", "again"), ("C", "cherry!"))
    assert got["starts-with-a"] == kvs(("A", "apple!"), ("b", "again"))


def test_process_returns_a_stream_named_after_the_processor() -> None:
    builder = StreamsBuilder()
    stream = builder.stream("in").process(Shout, named="shout")
    assert stream.node_name == "shout"
    unnamed = builder.stream("other").process(Shout)
    assert re.fullmatch(r"KSTREAM-PROCESSOR-\d{10}", unnamed.node_name)


# -- metadata propagation and chains ---------------------------------------------------------------


def test_timestamps_and_headers_propagate_through_stateless_operations() -> None:
    headers = [("trace", b"abc"), ("n", None)]
    builder = StreamsBuilder()
    (
        builder.stream("in")
        .filter(lambda k, v: True)
        .map(lambda k, v: (v, k))
        .map_values(str.upper)
        .flat_map_values(lambda v: [v, v.lower()])
        .flat_map(lambda k, v: [(k, v)])
        .select_key(lambda k, v: k + "!")
        .peek(lambda k, v: None)
        .to("out")
    )
    with TopologyTestDriver(builder.build(), string_config()) as driver:
        source = driver.create_input_topic("in")
        source.pipe_input("k1", "v1", timestamp=1_700_000_000_123, headers=headers)
        source.pipe_input("k2", "v2", timestamp=42)
        out = driver.create_output_topic("out").read_records_to_list()
    assert out == [
        OutRecord("v1!", "K1", 1_700_000_000_123, headers),
        OutRecord("v1!", "k1", 1_700_000_000_123, headers),
        OutRecord("v2!", "K2", 42, None),
        OutRecord("v2!", "k2", 42, None),
    ]


def test_timestamp_defaults_to_the_driver_wall_clock() -> None:
    builder = StreamsBuilder()
    builder.stream("in").to("out")
    with TopologyTestDriver(builder.build(), string_config(), 5_000) as driver:
        driver.create_input_topic("in").pipe_input("v")
        driver.advance_wall_clock_time(250)
        driver.create_input_topic("in").pipe_input("w")
        out = driver.create_output_topic("out").read_records_to_list()
    assert [(r.key, r.value, r.timestamp) for r in out] == [(None, "v", 5_000), (None, "w", 5_250)]


def test_chained_filter_map_flat_map_values_to() -> None:
    lines = [
        ("u1", "The quick brown fox"),
        ("u2", "skip this line"),
        ("u3", "jumps over the lazy dog"),
        ("u4", ""),
    ]

    def build(b: StreamsBuilder) -> None:
        (
            b.stream("in")
            .filter(lambda k, v: not v.startswith("skip"))
            .map(lambda k, v: (k.upper(), v.lower()))
            .flat_map_values(str.split)
            .to("out")
        )

    expected = [
        KeyValue(key.upper(), word)
        for key, line in lines
        if not line.startswith("skip")
        for word in line.lower().split()
    ]
    assert len(expected) == 9
    assert run(build, lines)["out"] == expected


def test_null_keys_and_values_pass_through() -> None:
    got = run(
        lambda b: b.stream("in").filter(lambda k, v: True).to("out"),
        [(None, "v"), ("k", None), (None, None)],
    )
    assert got["out"] == kvs((None, "v"), ("k", None), (None, None))
