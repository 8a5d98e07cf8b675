"""The conformance topologies in topicflow, one function per name in README.md.

The Java twins are in `oracle/src/main/java/topicflow/conformance/Topologies.java`;
both follow the README's table, so a difference in output is a difference in
semantics, never in the topology.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from topicflow import Named, Processor, ProcessorContext, Record, StreamsBuilder, Topology
from topicflow.dsl.cogrouped import CogroupedKStream
from topicflow.dsl.join_windows import JoinWindows
from topicflow.dsl.kgrouped import KGroupedStream
from topicflow.dsl.kstream import KStream
from topicflow.dsl.ktable import KTable
from topicflow.dsl.options import Branched, BufferConfig, Materialized, Suppressed
from topicflow.dsl.windows import SessionWindows, SlidingWindows, TimeWindows, Windowed
from topicflow.processor import PunctuationType
from topicflow.serdes import Serdes

SECOND = timedelta(seconds=1)
TUMBLING = TimeWindows.of_size_and_grace(10 * SECOND, 5 * SECOND)
TUMBLING_NO_GRACE = TimeWindows.of_size_with_no_grace(10 * SECOND)
HOPPING = TimeWindows.of_size_and_grace(10 * SECOND, 2 * SECOND).advance_by(5 * SECOND)
SLIDING = SlidingWindows.of_time_difference_and_grace(5 * SECOND, 3 * SECOND)
SESSION = SessionWindows.of_inactivity_gap_and_grace(5 * SECOND, 2 * SECOND)


# -- the README's helpers ------------------------------------------------------------


def length(value: str | None) -> int:
    return 0 if value is None else len(value)


def as_string(value: Any) -> str | None:
    """Java's `String.valueOf` for the values these topologies produce (str or int)."""
    return None if value is None else str(value)


def null_text(value: str | None) -> str:
    """Java's string concatenation of a possibly null String."""
    return "null" if value is None else value


def windowed_text(key: Windowed[Any]) -> str:
    return f"{key.key}@{key.window.start}/{key.window.end}"


def table_out(table: KTable) -> None:
    table.to_stream().map_values(as_string).to("out")


def windowed_out(table: KTable) -> None:
    table.to_stream().map(lambda wk, v: (windowed_text(wk), as_string(v))).to("out")


def sum_lengths(_key: Any, value: str | None, aggregate: int) -> int:
    return aggregate + length(value)


def concat(a: str, b: str | None) -> str:
    """Java's `(a, b) -> a + b`: a null value concatenates as "null"."""
    return a + null_text(b)


def zero() -> int:
    return 0


def longs() -> Materialized:
    return Materialized.with_(Serdes.String(), Serdes.Long())


def first_char(_key: Any, value: str | None) -> str | None:
    return None if not value else value[0]


# -- stateless -----------------------------------------------------------------------


def t_filter(b: StreamsBuilder) -> None:
    b.stream("in").filter(lambda k, v: v is not None and len(v) % 2 == 1).to("out")


def t_filter_not(b: StreamsBuilder) -> None:
    b.stream("in").filter_not(lambda k, v: k == "a").to("out")


def t_map_values(b: StreamsBuilder) -> None:
    b.stream("in").map_values(lambda v: None if v is None else v.upper()).to("out")


def t_map_values_with_key(b: StreamsBuilder) -> None:
    b.stream("in").map_values(lambda k, v: f"{null_text(k)}:{null_text(v)}", with_key=True).to(
        "out"
    )


def t_map(b: StreamsBuilder) -> None:
    b.stream("in").map(lambda k, v: (v, k)).to("out")


def t_flat_map_values(b: StreamsBuilder) -> None:
    b.stream("in").flat_map_values(lambda v: [] if v is None else list(v)).to("out")


def t_flat_map(b: StreamsBuilder) -> None:
    b.stream("in").flat_map(lambda k, v: [] if v is None else [(k, v), (v, null_text(k))]).to("out")


def t_select_key(b: StreamsBuilder) -> None:
    b.stream("in").select_key(first_char).to("out")


def t_peek(b: StreamsBuilder) -> None:
    b.stream("in").peek(lambda k, v: None).to("out")


def t_split(b: StreamsBuilder) -> None:
    def to(topic: str) -> Callable[[KStream[Any, Any]], None]:
        return lambda stream: stream.to(topic)

    (
        b.stream("in")
        .split(Named.as_("s-"))
        .branch(
            lambda k, v: v is not None and v.startswith("a"), Branched.with_consumer(to("out-a"))
        )
        .branch(lambda k, v: k == "b", Branched.with_consumer(to("out-b")))
        .default_branch(Branched.with_consumer(to("out-default")))
    )


def t_merge(b: StreamsBuilder) -> None:
    other = b.stream("in2").map_values(lambda v: null_text(v) + "!")
    b.stream("in").merge(other).to("out")


def t_repartition(b: StreamsBuilder) -> None:
    b.stream("in").select_key(first_char).repartition().map_values(null_text).to("out")


def t_to_extractor(b: StreamsBuilder) -> None:
    b.stream("in").to(lambda k, v, ctx: "out-null" if v is None else f"out-{len(v) % 2}")


class Punctuating(Processor[str, str, str, str]):
    """Counts records; punctuates every 4 s of stream time and 3 s of wall-clock time."""

    def init(self, context: ProcessorContext[str, str]) -> None:
        self.context = context
        self.seen = 0
        context.schedule(4000, PunctuationType.STREAM_TIME, self._tick("stream-tick"))
        context.schedule(3000, PunctuationType.WALL_CLOCK_TIME, self._tick("wall-tick"))

    def _tick(self, key: str) -> Callable[[int], None]:
        def punctuate(timestamp: int) -> None:
            self.context.forward(Record(key, str(self.seen), timestamp))

        return punctuate

    def process(self, record: Record[str, str]) -> None:
        self.seen += 1
        self.context.forward(record.with_value(f"{null_text(record.value)}#{self.seen}"))


def t_punctuation(b: StreamsBuilder) -> None:
    b.stream("in").process(Punctuating).to("out")


# -- stateful ------------------------------------------------------------------------


def t_count(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().count())


def t_group_by_count(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by(lambda k, v: v).count())


def t_reduce(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().reduce(concat))


def t_aggregate(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().aggregate(zero, sum_lengths, longs()))


def t_count_filter(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().count().filter(lambda k, v: v % 2 == 0))


def t_count_map_values(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().count().map_values(lambda v: v * 10))


def t_count_map_values_filter(b: StreamsBuilder) -> None:
    table_out(
        b.stream("in")
        .group_by_key()
        .count()
        .map_values(lambda v: v * 10)
        .filter(lambda k, v: v % 20 == 0)
    )


def t_reduce_filter(b: StreamsBuilder) -> None:
    table_out(b.stream("in").group_by_key().reduce(concat).filter(lambda k, v: len(v) % 2 == 0))


def t_aggregate_filter(b: StreamsBuilder) -> None:
    table_out(
        b.stream("in")
        .group_by_key()
        .aggregate(zero, sum_lengths, longs())
        .filter(lambda k, v: v % 2 == 0)
    )


def t_tumbling_count_filter(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(TUMBLING).count().filter(lambda k, v: v % 2 == 0)
    )


def t_sliding_count_filter(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(SLIDING).count().filter(lambda k, v: v % 2 == 0)
    )


def t_session_count_filter(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(SESSION).count().filter(lambda k, v: v % 2 == 0)
    )


def t_tumbling_count(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(TUMBLING).count())


def t_tumbling_count_no_grace(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(TUMBLING_NO_GRACE).count())


def t_tumbling_reduce(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(TUMBLING).reduce(concat))


def t_tumbling_aggregate(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(TUMBLING).aggregate(zero, sum_lengths, longs())
    )


def t_hopping_count(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(HOPPING).count())


def t_hopping_aggregate(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(HOPPING).aggregate(zero, sum_lengths, longs())
    )


def t_group_by_tumbling_count(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by(lambda k, v: v).windowed_by(TUMBLING).count())


def t_sliding_count(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(SLIDING).count())


def t_sliding_aggregate(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in").group_by_key().windowed_by(SLIDING).aggregate(zero, sum_lengths, longs())
    )


def t_session_count(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(SESSION).count())


def t_session_reduce(b: StreamsBuilder) -> None:
    windowed_out(b.stream("in").group_by_key().windowed_by(SESSION).reduce(concat))


def t_session_aggregate(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in")
        .group_by_key()
        .windowed_by(SESSION)
        .aggregate(zero, sum_lengths, lambda k, a, b_: a + b_, longs())
    )


def t_suppress_tumbling(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in")
        .group_by_key()
        .windowed_by(TUMBLING)
        .count()
        .suppress(Suppressed.until_window_closes())
    )


def t_suppress_sliding(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in")
        .group_by_key()
        .windowed_by(SLIDING)
        .count()
        .suppress(Suppressed.until_window_closes())
    )


def t_suppress_session(b: StreamsBuilder) -> None:
    windowed_out(
        b.stream("in")
        .group_by_key()
        .windowed_by(SESSION)
        .count()
        .suppress(Suppressed.until_window_closes())
    )


def t_table(b: StreamsBuilder) -> None:
    b.table("tin").to_stream().to("out")


def t_table_materialized(b: StreamsBuilder) -> None:
    b.table("tin", materialized=Materialized.as_("tin-store")).to_stream().to("out")


def t_table_filter(b: StreamsBuilder) -> None:
    b.table("tin").filter(lambda k, v: len(v) % 2 == 1).to_stream().to("out")


def t_table_materialized_filter_not(b: StreamsBuilder) -> None:
    (
        b.table("tin", materialized=Materialized.as_("tin-store"))
        .filter_not(lambda k, v: v.startswith("a"))
        .to_stream()
        .to("out")
    )


def t_table_filter_map_values(b: StreamsBuilder) -> None:
    (
        b.table("tin", materialized=Materialized.as_("tin-store"))
        .filter(lambda k, v: len(v) % 2 == 1)
        .map_values(lambda v: v.upper())
        .to_stream()
        .to("out")
    )


def t_to_table(b: StreamsBuilder) -> None:
    b.stream("in").to_table().to_stream().to("out")


def t_to_table_materialized(b: StreamsBuilder) -> None:
    b.stream("in").to_table(materialized=Materialized.as_("tt-store")).to_stream().to("out")


def joined_text(value: str | None, other: str | None) -> str:
    return null_text(value) + "+" + null_text(other)


def t_stream_table_join(b: StreamsBuilder) -> None:
    b.stream("in").join(b.table("tin"), joined_text).to("out")


def t_stream_table_left_join(b: StreamsBuilder) -> None:
    b.stream("in").left_join(b.table("tin"), joined_text).to("out")


def t_stream_table_left_join_derived(b: StreamsBuilder) -> None:
    table = b.table("tin").filter(lambda k, v: len(v) % 2 == 1).map_values(lambda v: v.upper())
    b.stream("in").left_join(table, joined_text).to("out")


def t_stream_table_join_count(b: StreamsBuilder) -> None:
    counts = b.stream("in2").group_by_key().count()
    b.stream("in").join(counts, lambda v, c: f"{null_text(v)}#{c}").to("out")


def t_stream_table_left_join_rekeyed(b: StreamsBuilder) -> None:
    (
        b.stream("in")
        .select_key(lambda k, v: None if not v else v[0])
        .left_join(b.table("tin"), joined_text)
        .to("out")
    )


def first_letter(_key: str | None, value: str | None) -> str | None:
    return None if not value else value[0]


def keyed_joined_text(key: str | None, value: str | None, other: str | None) -> str:
    return null_text(key) + ":" + joined_text(value, other)


def t_global_table_join(b: StreamsBuilder) -> None:
    b.stream("in").join(b.global_table("gin"), first_letter, joined_text).to("out")


def t_global_table_left_join(b: StreamsBuilder) -> None:
    (
        b.stream("in")
        .left_join(b.global_table("gin"), first_letter, keyed_joined_text, with_key=True)
        .to("out")
    )


def t_global_table_left_join_rekeyed(b: StreamsBuilder) -> None:
    (
        b.stream("in")
        .select_key(first_letter)
        .left_join(b.global_table("gin"), lambda k, v: k, keyed_joined_text, with_key=True)
        .to("out")
    )


# -- stream-stream joins ---------------------------------------------------------------

JOIN_WINDOWS = JoinWindows.of_time_difference_and_grace(timedelta(seconds=5), timedelta(seconds=3))


def t_stream_stream_join(b: StreamsBuilder) -> None:
    b.stream("in").join(b.stream("in2"), joined_text, JOIN_WINDOWS).to("out")


def t_stream_stream_left_join(b: StreamsBuilder) -> None:
    b.stream("in").left_join(b.stream("in2"), joined_text, JOIN_WINDOWS).to("out")


def t_stream_stream_outer_join(b: StreamsBuilder) -> None:
    b.stream("in").outer_join(
        b.stream("in2"),
        lambda k, v, ov: f"{null_text(k)}:{joined_text(v, ov)}",
        JOIN_WINDOWS,
        with_key=True,
    ).to("out")


def t_stream_stream_outer_join_asymmetric(b: StreamsBuilder) -> None:
    windows = JOIN_WINDOWS.before(timedelta(seconds=2)).after(timedelta(seconds=6))
    b.stream("in").outer_join(b.stream("in2"), joined_text, windows).to("out")


def t_stream_stream_left_join_no_grace(b: StreamsBuilder) -> None:
    windows = JoinWindows.of_time_difference_with_no_grace(timedelta(seconds=5))
    b.stream("in").left_join(b.stream("in2"), joined_text, windows).to("out")


def t_stream_stream_left_join_rekeyed(b: StreamsBuilder) -> None:
    (
        b.stream("in")
        .select_key(first_char)
        .left_join(b.stream("in2"), joined_text, JOIN_WINDOWS)
        .to("out")
    )


def t_stream_stream_self_join(b: StreamsBuilder) -> None:
    stream = b.stream("in")
    stream.join(stream, joined_text, JOIN_WINDOWS).to("out")


# -- KGroupedTable (KTable.group_by) and suppress(until_time_limit) --------------------


def remove(aggregate: str, value: str) -> str:
    """The README's REMOVE(a, v): `a` without the first occurrence of `v`."""
    return aggregate.replace(value, "", 1)


def t_table_group_by_count(b: StreamsBuilder) -> None:
    table_out(b.table("tin").group_by(lambda k, v: (v[:1] or None, v)).count())


def t_table_group_by_reduce(b: StreamsBuilder) -> None:
    table_out(
        b.table("tin")
        .group_by(lambda k, v: (str(len(v)), k + v))
        .reduce(lambda a, v: a + v, remove)
    )


def t_table_group_by_aggregate(b: StreamsBuilder) -> None:
    table_out(
        b.table("tin")
        .group_by(lambda k, v: (v[-1:] or "empty", v))
        .aggregate(
            zero,
            sum_lengths,
            lambda k, v, agg: agg - length(v),
            Materialized.with_(Serdes.String(), Serdes.Long()),
        )
    )


def t_table_group_by_same_key(b: StreamsBuilder) -> None:
    table_out(
        b.table("tin").group_by(lambda k, v: (k, v or None)).reduce(lambda a, v: a + v, remove)
    )


def t_table_filter_group_by_count_filter(b: StreamsBuilder) -> None:
    table_out(
        b.table("tin")
        .filter(lambda k, v: len(v) > 0)
        .group_by(lambda k, v: (v[:1], v))
        .count()
        .filter(lambda k, v: v % 2 == 0)
    )


def t_suppress_time_limit_count(b: StreamsBuilder) -> None:
    table_out(
        b.stream("in")
        .group_by_key()
        .count()
        .suppress(Suppressed.until_time_limit(5 * SECOND, BufferConfig.unbounded()))
    )


def t_suppress_time_limit_table(b: StreamsBuilder) -> None:
    (
        b.table("tin")
        .suppress(Suppressed.until_time_limit(5 * SECOND, BufferConfig.unbounded()))
        .to_stream()
        .to("out")
    )


def t_suppress_time_limit_max_bytes(b: StreamsBuilder) -> None:
    table_out(
        b.stream("in")
        .group_by_key()
        .count()
        .suppress(
            Suppressed.until_time_limit(
                5 * SECOND, BufferConfig.max_bytes(100).emit_early_when_full()
            )
        )
    )


def t_suppress_time_limit_table_filter(b: StreamsBuilder) -> None:
    (
        b.table("tin")
        .suppress(Suppressed.until_time_limit(5 * SECOND, BufferConfig.unbounded()))
        .filter(lambda k, v: len(v) % 2 == 1)
        .to_stream()
        .to("out")
    )


def t_suppress_time_limit_max_records(b: StreamsBuilder) -> None:
    table_out(
        b.stream("in")
        .group_by_key()
        .count()
        .suppress(
            Suppressed.until_time_limit(
                5 * SECOND, BufferConfig.max_records(2).emit_early_when_full()
            )
        )
    )


# -- cogroup (KIP-150) ---------------------------------------------------------------


def cog(g1: KGroupedStream, g2: KGroupedStream) -> CogroupedKStream:
    """The README's `COG(g1, g2)`: g1 adds len(v), g2 adds 10 * len(v)."""
    return g1.cogroup(sum_lengths).cogroup(g2, lambda k, v, agg: agg + 10 * length(v))


def t_cogroup_aggregate(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    table_out(cogrouped.aggregate(zero, materialized=longs()))


def t_cogroup_aggregate_filter(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    table_out(cogrouped.aggregate(zero, materialized=longs()).filter(lambda k, v: v % 2 == 0))


def t_cogroup_rekeyed(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by(first_char))
    table_out(cogrouped.aggregate(zero, materialized=longs()))


def t_cogroup_tumbling(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    windowed_out(cogrouped.windowed_by(TUMBLING).aggregate(zero, materialized=longs()))


def t_cogroup_hopping(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    windowed_out(cogrouped.windowed_by(HOPPING).aggregate(zero, materialized=longs()))


def t_cogroup_sliding(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    windowed_out(cogrouped.windowed_by(SLIDING).aggregate(zero, materialized=longs()))


def t_cogroup_session(b: StreamsBuilder) -> None:
    cogrouped = cog(b.stream("in").group_by_key(), b.stream("in2").group_by_key())
    windowed_out(
        cogrouped.windowed_by(SESSION).aggregate(
            zero, lambda k, a, b_: a + b_, materialized=longs()
        )
    )


# -- table-table joins: the tables "tin" and "tin2" -----------------------------------


def t_table_table_join(b: StreamsBuilder) -> None:
    b.table("tin").join(b.table("tin2"), joined_text).to_stream().to("out")


def t_table_table_left_join(b: StreamsBuilder) -> None:
    b.table("tin").left_join(b.table("tin2"), joined_text).to_stream().to("out")


def t_table_table_outer_join(b: StreamsBuilder) -> None:
    b.table("tin").outer_join(b.table("tin2"), joined_text).to_stream().to("out")


def t_table_table_outer_join_materialized(b: StreamsBuilder) -> None:
    joined = b.table("tin").outer_join(
        b.table("tin2"), joined_text, materialized=Materialized.as_("joined")
    )
    joined.to_stream().to("out")


def t_table_table_join_derived(b: StreamsBuilder) -> None:
    (
        b.table("tin")
        .filter(lambda k, v: len(v) % 2 == 1)
        .left_join(b.table("tin2").map_values(lambda v: v.upper()), joined_text)
        .filter(lambda k, v: len(v) % 2 == 0)
        .to_stream()
        .to("out")
    )


def t_table_table_join_chained(b: StreamsBuilder) -> None:
    other = b.table("tin2")
    (
        b.table("tin")
        .outer_join(other, joined_text)
        .join(other.map_values(lambda v: v + "!"), lambda v, o: f"{null_text(v)}/{null_text(o)}")
        .to_stream()
        .to("out")
    )


def t_table_table_join_count(b: StreamsBuilder) -> None:
    counts = b.stream("in").group_by_key().count()
    counts.outer_join(
        b.table("tin"), lambda c, v: f"{null_text(as_string(c))}#{null_text(v)}"
    ).to_stream().to("out")


def t_stream_join_of_table_table_join(b: StreamsBuilder) -> None:
    (
        b.stream("in")
        .left_join(
            b.table("tin").left_join(b.table("tin2"), joined_text),
            lambda v, t: f"{null_text(v)}/{null_text(t)}",
        )
        .to("out")
    )


# -- foreign-key joins: a value's first character is the key of "tin2" it joins --------


def first_character(value: str) -> str | None:
    return value[0] if value else None


def t_fk_join(b: StreamsBuilder) -> None:
    joined = b.table("tin").join(
        b.table("tin2"), joined_text, foreign_key_extractor=first_character
    )
    joined.to_stream().to("out")


def t_fk_left_join(b: StreamsBuilder) -> None:
    joined = b.table("tin").left_join(
        b.table("tin2"), joined_text, foreign_key_extractor=first_character
    )
    joined.to_stream().to("out")


def t_fk_left_join_materialized(b: StreamsBuilder) -> None:
    joined = b.table("tin").left_join(
        b.table("tin2"),
        joined_text,
        materialized=Materialized.as_("fk-joined"),
        foreign_key_extractor=first_character,
    )
    joined.to_stream().to("out")


def t_fk_left_join_derived(b: StreamsBuilder) -> None:
    (
        b.table("tin")
        .filter(lambda k, v: len(v) != 2)
        .left_join(
            b.table("tin2").map_values(lambda v: v + "!"),
            joined_text,
            foreign_key_extractor=first_character,
        )
        .map_values(lambda v: v.upper())
        .to_stream()
        .to("out")
    )


def t_fk_join_then_table_join(b: StreamsBuilder) -> None:
    other = b.table("tin2")
    (
        b.table("tin")
        .join(other, joined_text, foreign_key_extractor=first_character)
        .left_join(other, lambda v, o: f"{null_text(v)}/{null_text(o)}")
        .to_stream()
        .to("out")
    )


Build = Callable[[StreamsBuilder], None]

# name -> (build, stateful, input topics). Stateful topologies run with caching
# off and on; stateless ones have no store, so caching changes nothing.
TOPOLOGIES: dict[str, tuple[Build, bool, tuple[str, ...]]] = {
    "filter": (t_filter, False, ("in",)),
    "filter_not": (t_filter_not, False, ("in",)),
    "map_values": (t_map_values, False, ("in",)),
    "map_values_with_key": (t_map_values_with_key, False, ("in",)),
    "map": (t_map, False, ("in",)),
    "flat_map_values": (t_flat_map_values, False, ("in",)),
    "flat_map": (t_flat_map, False, ("in",)),
    "select_key": (t_select_key, False, ("in",)),
    "peek": (t_peek, False, ("in",)),
    "split": (t_split, False, ("in",)),
    "merge": (t_merge, False, ("in", "in2")),
    "repartition": (t_repartition, False, ("in",)),
    "to_extractor": (t_to_extractor, False, ("in",)),
    "punctuation": (t_punctuation, False, ("in",)),
    "count": (t_count, True, ("in",)),
    "group_by_count": (t_group_by_count, True, ("in",)),
    "reduce": (t_reduce, True, ("in",)),
    "aggregate": (t_aggregate, True, ("in",)),
    "count_filter": (t_count_filter, True, ("in",)),
    "count_map_values": (t_count_map_values, True, ("in",)),
    "count_map_values_filter": (t_count_map_values_filter, True, ("in",)),
    "reduce_filter": (t_reduce_filter, True, ("in",)),
    "aggregate_filter": (t_aggregate_filter, True, ("in",)),
    "tumbling_count_filter": (t_tumbling_count_filter, True, ("in",)),
    "sliding_count_filter": (t_sliding_count_filter, True, ("in",)),
    "session_count_filter": (t_session_count_filter, True, ("in",)),
    "tumbling_count": (t_tumbling_count, True, ("in",)),
    "tumbling_count_no_grace": (t_tumbling_count_no_grace, True, ("in",)),
    "tumbling_reduce": (t_tumbling_reduce, True, ("in",)),
    "tumbling_aggregate": (t_tumbling_aggregate, True, ("in",)),
    "hopping_count": (t_hopping_count, True, ("in",)),
    "hopping_aggregate": (t_hopping_aggregate, True, ("in",)),
    "group_by_tumbling_count": (t_group_by_tumbling_count, True, ("in",)),
    "sliding_count": (t_sliding_count, True, ("in",)),
    "sliding_aggregate": (t_sliding_aggregate, True, ("in",)),
    "session_count": (t_session_count, True, ("in",)),
    "session_reduce": (t_session_reduce, True, ("in",)),
    "session_aggregate": (t_session_aggregate, True, ("in",)),
    "suppress_tumbling": (t_suppress_tumbling, True, ("in",)),
    "suppress_sliding": (t_suppress_sliding, True, ("in",)),
    "suppress_session": (t_suppress_session, True, ("in",)),
    "table": (t_table, True, ("tin",)),
    "table_materialized": (t_table_materialized, True, ("tin",)),
    "table_filter": (t_table_filter, True, ("tin",)),
    "table_materialized_filter_not": (t_table_materialized_filter_not, True, ("tin",)),
    "table_filter_map_values": (t_table_filter_map_values, True, ("tin",)),
    "to_table": (t_to_table, True, ("in",)),
    "to_table_materialized": (t_to_table_materialized, True, ("in",)),
    "stream_table_join": (t_stream_table_join, True, ("in", "tin")),
    "stream_table_left_join": (t_stream_table_left_join, True, ("in", "tin")),
    "stream_table_left_join_derived": (t_stream_table_left_join_derived, True, ("in", "tin")),
    "stream_table_join_count": (t_stream_table_join_count, True, ("in", "in2")),
    "stream_table_left_join_rekeyed": (t_stream_table_left_join_rekeyed, True, ("in", "tin")),
    "global_table_join": (t_global_table_join, True, ("in", "gin")),
    "global_table_left_join": (t_global_table_left_join, True, ("in", "gin")),
    "global_table_left_join_rekeyed": (t_global_table_left_join_rekeyed, True, ("in", "gin")),
    "stream_stream_join": (t_stream_stream_join, True, ("in", "in2")),
    "stream_stream_left_join": (t_stream_stream_left_join, True, ("in", "in2")),
    "stream_stream_outer_join": (t_stream_stream_outer_join, True, ("in", "in2")),
    "stream_stream_outer_join_asymmetric": (
        t_stream_stream_outer_join_asymmetric,
        True,
        ("in", "in2"),
    ),
    "stream_stream_left_join_no_grace": (t_stream_stream_left_join_no_grace, True, ("in", "in2")),
    "stream_stream_left_join_rekeyed": (t_stream_stream_left_join_rekeyed, True, ("in", "in2")),
    "stream_stream_self_join": (t_stream_stream_self_join, True, ("in",)),
    "table_group_by_count": (t_table_group_by_count, True, ("tin",)),
    "table_group_by_reduce": (t_table_group_by_reduce, True, ("tin",)),
    "table_group_by_aggregate": (t_table_group_by_aggregate, True, ("tin",)),
    "table_group_by_same_key": (t_table_group_by_same_key, True, ("tin",)),
    "table_filter_group_by_count_filter": (t_table_filter_group_by_count_filter, True, ("tin",)),
    "suppress_time_limit_count": (t_suppress_time_limit_count, True, ("in",)),
    "suppress_time_limit_table": (t_suppress_time_limit_table, True, ("tin",)),
    "suppress_time_limit_max_records": (t_suppress_time_limit_max_records, True, ("in",)),
    "suppress_time_limit_table_filter": (t_suppress_time_limit_table_filter, True, ("tin",)),
    "suppress_time_limit_max_bytes": (t_suppress_time_limit_max_bytes, True, ("in",)),
    "cogroup_aggregate": (t_cogroup_aggregate, True, ("in", "in2")),
    "cogroup_aggregate_filter": (t_cogroup_aggregate_filter, True, ("in", "in2")),
    "cogroup_rekeyed": (t_cogroup_rekeyed, True, ("in", "in2")),
    "cogroup_tumbling": (t_cogroup_tumbling, True, ("in", "in2")),
    "cogroup_hopping": (t_cogroup_hopping, True, ("in", "in2")),
    "cogroup_sliding": (t_cogroup_sliding, True, ("in", "in2")),
    "cogroup_session": (t_cogroup_session, True, ("in", "in2")),
    "table_table_join": (t_table_table_join, True, ("tin", "tin2")),
    "table_table_left_join": (t_table_table_left_join, True, ("tin", "tin2")),
    "table_table_outer_join": (t_table_table_outer_join, True, ("tin", "tin2")),
    "table_table_outer_join_materialized": (
        t_table_table_outer_join_materialized,
        True,
        ("tin", "tin2"),
    ),
    "table_table_join_derived": (t_table_table_join_derived, True, ("tin", "tin2")),
    "table_table_join_chained": (t_table_table_join_chained, True, ("tin", "tin2")),
    "table_table_join_count": (t_table_table_join_count, True, ("in", "tin")),
    "stream_join_of_table_table_join": (
        t_stream_join_of_table_table_join,
        True,
        ("in", "tin", "tin2"),
    ),
    "fk_join": (t_fk_join, True, ("tin", "tin2")),
    "fk_left_join": (t_fk_left_join, True, ("tin", "tin2")),
    "fk_left_join_materialized": (t_fk_left_join_materialized, True, ("tin", "tin2")),
    "fk_left_join_derived": (t_fk_left_join_derived, True, ("tin", "tin2")),
    "fk_join_then_table_join": (t_fk_join_then_table_join, True, ("tin", "tin2")),
}


def build(name: str) -> Topology:
    builder = StreamsBuilder()
    TOPOLOGIES[name][0](builder)
    return builder.build()
