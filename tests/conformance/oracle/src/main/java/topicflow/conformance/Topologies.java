package topicflow.conformance;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.CogroupedKStream;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KGroupedStream;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The conformance topologies, one definition per name in tests/conformance/README.md,
 * written exactly as the README's tables say (its helpers S, N, W, T, WT, SUM and CONCAT
 * included). topicflow's twins are in tests/conformance/topologies.py. Definitions are
 * stateless, so cases on several threads can build them at once.
 */
final class Topologies {

    static final TimeWindows TUMBLING =
            TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ofSeconds(5));
    static final TimeWindows TUMBLING_NO_GRACE = TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(10));
    static final TimeWindows HOPPING =
            TimeWindows.ofSizeAndGrace(Duration.ofSeconds(10), Duration.ofSeconds(2))
                    .advanceBy(Duration.ofSeconds(5));
    static final SlidingWindows SLIDING =
            SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3));
    static final SessionWindows SESSION =
            SessionWindows.ofInactivityGapAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(2));

    /** Every topology by name; each adds its processors to the builder it is given. */
    private static final Map<String, Consumer<StreamsBuilder>> BY_NAME = new TreeMap<>();

    private Topologies() {}

    /** The topology called {@code name}, or null when there is none by that name. */
    static Topology build(String name) {
        Consumer<StreamsBuilder> definition = BY_NAME.get(name);
        if (definition == null) {
            return null;
        }
        StreamsBuilder builder = new StreamsBuilder();
        definition.accept(builder);
        return builder.build();
    }

    // -- the README's helpers --------------------------------------------------------

    static int len(String v) {
        return v == null ? 0 : v.length();
    }

    static String S(Object x) {
        return x == null ? null : String.valueOf(x);
    }

    static String N(String x) {
        return x == null ? "null" : x;
    }

    static String W(Windowed<String> wk) {
        return wk.key() + "@" + wk.window().start() + "/" + wk.window().end();
    }

    static <V> void T(KTable<String, V> table) {
        table.toStream().mapValues(v -> S(v)).to("out");
    }

    static <V> void WT(KTable<Windowed<String>, V> table) {
        table.toStream().map((wk, v) -> KeyValue.pair(W(wk), S(v))).to("out");
    }

    /** The default serdes made explicit, where Kafka needs them spelled out (suppress). */
    private static Grouped<String, String> strings() {
        return Grouped.with(Serdes.String(), Serdes.String());
    }

    static KStream<String, String> in(StreamsBuilder b) {
        return b.stream("in");
    }

    static KStream<String, String> in2(StreamsBuilder b) {
        return b.stream("in2");
    }

    /**
     * {@code v.toUpperCase()} of the README, pinned to the root locale: the same result
     * in every locale but the Turkic ones, whatever locale this JVM starts in.
     */
    static String upper(String v) {
        return v.toUpperCase(Locale.ROOT);
    }

    private static void define(String name, Consumer<StreamsBuilder> definition) {
        if (BY_NAME.put(name, definition) != null) {
            throw new IllegalStateException("topology defined twice: " + name);
        }
    }

    // -- stateless -------------------------------------------------------------------

    static {
        define("filter", b -> in(b).filter((k, v) -> v != null && v.length() % 2 == 1).to("out"));
        define("filter_not", b -> in(b).filterNot((k, v) -> "a".equals(k)).to("out"));
        define("map_values", b -> in(b).mapValues(v -> v == null ? null : upper(v)).to("out"));
        define("map_values_with_key", b -> in(b).mapValues((k, v) -> N(k) + ":" + N(v)).to("out"));
        define("map", b -> in(b).map((k, v) -> KeyValue.pair(v, k)).to("out"));
        // "Each character" is taken as each code point, so that a character outside the
        // BMP stays whole (as Python's list(v) keeps it), rather than as two lone surrogates.
        define("flat_map_values", b -> in(b).flatMapValues(v -> {
            if (v == null) {
                return Collections.<String>emptyList();
            }
            List<String> characters = new ArrayList<>(v.length());
            v.codePoints().forEach(c -> characters.add(new String(Character.toChars(c))));
            return characters;
        }).to("out"));
        define("flat_map", b -> in(b).flatMap((k, v) -> v == null
                ? List.<KeyValue<String, String>>of()
                : List.of(KeyValue.pair(k, v), KeyValue.pair(v, N(k)))).to("out"));
        define("select_key", b -> in(b)
                .selectKey((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1))
                .to("out"));
        define("peek", b -> in(b).peek((k, v) -> {}).to("out"));
        define("split", b -> in(b).split(Named.as("s-"))
                .branch((k, v) -> v != null && v.startsWith("a"), Branched.withConsumer(s -> s.to("out-a")))
                .branch((k, v) -> "b".equals(k), Branched.withConsumer(s -> s.to("out-b")))
                .defaultBranch(Branched.withConsumer(s -> s.to("out-default"))));
        define("merge", b -> in(b).merge(in2(b).mapValues(v -> N(v) + "!")).to("out"));
        define("repartition", b -> in(b)
                .selectKey((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1))
                .repartition()
                .mapValues(v -> N(v))
                .to("out"));
        define("to_extractor", b -> in(b).to((k, v, ctx) -> v == null ? "out-null" : "out-" + (v.length() % 2)));
        define("punctuation", b -> in(b).process(Punctuating::new).to("out"));
    }

    // -- stateful --------------------------------------------------------------------

    static {
        define("count", b -> T(in(b).groupByKey().count()));
        define("group_by_count", b -> T(in(b).groupBy((k, v) -> v).count()));
        define("reduce", b -> T(in(b).groupByKey().reduce((x, y) -> x + y)));
        define("aggregate", b -> T(in(b).groupByKey().aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), Materialized.with(Serdes.String(), Serdes.Long()))));
        define("count_filter", b -> T(in(b).groupByKey().count().filter((k, v) -> v % 2 == 0)));
        define("count_map_values", b -> T(in(b).groupByKey().count().mapValues(v -> v * 10)));
        define("count_map_values_filter", b -> T(in(b).groupByKey().count()
                .mapValues(v -> v * 10).filter((k, v) -> v % 20 == 0)));
        define("reduce_filter", b -> T(in(b).groupByKey().reduce((x, y) -> x + y)
                .filter((k, v) -> v.length() % 2 == 0)));
        define("aggregate_filter", b -> T(in(b).groupByKey().aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), Materialized.with(Serdes.String(), Serdes.Long()))
                .filter((k, v) -> v % 2 == 0)));
        define("tumbling_count_filter", b -> WT(in(b).groupByKey().windowedBy(TUMBLING).count()
                .filter((k, v) -> v % 2 == 0)));
        define("sliding_count_filter", b -> WT(in(b).groupByKey().windowedBy(SLIDING).count()
                .filter((k, v) -> v % 2 == 0)));
        define("session_count_filter", b -> WT(in(b).groupByKey().windowedBy(SESSION).count()
                .filter((k, v) -> v % 2 == 0)));

        define("tumbling_count", b -> WT(in(b).groupByKey().windowedBy(TUMBLING).count()));
        define("tumbling_count_no_grace", b -> WT(in(b).groupByKey().windowedBy(TUMBLING_NO_GRACE).count()));
        define("tumbling_reduce", b -> WT(in(b).groupByKey().windowedBy(TUMBLING).reduce((x, y) -> x + y)));
        define("tumbling_aggregate", b -> WT(in(b).groupByKey().windowedBy(TUMBLING).aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), Materialized.with(Serdes.String(), Serdes.Long()))));
        define("hopping_count", b -> WT(in(b).groupByKey().windowedBy(HOPPING).count()));
        define("hopping_aggregate", b -> WT(in(b).groupByKey().windowedBy(HOPPING).aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), Materialized.with(Serdes.String(), Serdes.Long()))));
        define("group_by_tumbling_count", b -> WT(in(b).groupBy((k, v) -> v).windowedBy(TUMBLING).count()));
        define("sliding_count", b -> WT(in(b).groupByKey().windowedBy(SLIDING).count()));
        define("sliding_aggregate", b -> WT(in(b).groupByKey().windowedBy(SLIDING).aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), Materialized.with(Serdes.String(), Serdes.Long()))));
        define("session_count", b -> WT(in(b).groupByKey().windowedBy(SESSION).count()));
        define("session_reduce", b -> WT(in(b).groupByKey().windowedBy(SESSION).reduce((x, y) -> x + y)));
        define("session_aggregate", b -> WT(in(b).groupByKey().windowedBy(SESSION).aggregate(
                () -> 0L, (k, v, agg) -> agg + len(v), (k, x, y) -> x + y,
                Materialized.with(Serdes.String(), Serdes.Long()))));

        // The README writes groupByKey() here, but in Kafka 4.1 that leaves the windowed
        // table without a key serde, and the suppression buffer then serializes Windowed keys
        // with the default StringSerde: ClassCastException on the first record. Naming the
        // String key serde (as the String default would be anyway) changes nothing else.
        define("suppress_tumbling", b -> WT(in(b).groupByKey(strings()).windowedBy(TUMBLING).count()
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))));
        define("suppress_sliding", b -> WT(in(b).groupByKey(strings()).windowedBy(SLIDING).count()
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))));
        define("suppress_session", b -> WT(in(b).groupByKey(strings()).windowedBy(SESSION).count()
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))));

        define("table", b -> b.<String, String>table("tin").toStream().to("out"));
        define("table_materialized", b -> b.table("tin",
                Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("tin-store")).toStream().to("out"));
        define("table_filter", b -> b.<String, String>table("tin")
                .filter((k, v) -> v.length() % 2 == 1)
                .toStream()
                .to("out"));
        define("table_materialized_filter_not", b -> b.table("tin",
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("tin-store"))
                .filterNot((k, v) -> v.startsWith("a"))
                .toStream()
                .to("out"));
        define("table_filter_map_values", b -> b.table("tin",
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("tin-store"))
                .filter((k, v) -> v.length() % 2 == 1)
                .mapValues(v -> upper(v))
                .toStream()
                .to("out"));

        define("to_table", b -> in(b).toTable().toStream().to("out"));
        define("to_table_materialized", b -> in(b).toTable(
                Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("tt-store")).toStream().to("out"));
        define("stream_table_join", b -> in(b)
                .join(b.<String, String>table("tin"), (v, tv) -> N(v) + "+" + N(tv))
                .to("out"));
        define("stream_table_left_join", b -> in(b)
                .leftJoin(b.<String, String>table("tin"), (v, tv) -> N(v) + "+" + N(tv))
                .to("out"));
        define("stream_table_left_join_derived", b -> in(b)
                .leftJoin(b.<String, String>table("tin")
                                .filter((k, v) -> v.length() % 2 == 1)
                                .mapValues(v -> upper(v)),
                        (v, tv) -> N(v) + "+" + N(tv))
                .to("out"));
        define("stream_table_join_count", b -> in(b)
                .join(in2(b).groupByKey().count(), (v, c) -> N(v) + "#" + c)
                .to("out"));
        define("stream_table_left_join_rekeyed", b -> in(b)
                .selectKey((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1))
                .leftJoin(b.<String, String>table("tin"), (v, tv) -> N(v) + "+" + N(tv))
                .to("out"));
        define("global_table_join", b -> in(b)
                .join(b.<String, String>globalTable("gin"),
                        (k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1),
                        (v, gv) -> N(v) + "+" + N(gv))
                .to("out"));
        define("global_table_left_join", b -> in(b)
                .leftJoin(b.<String, String>globalTable("gin"),
                        (k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1),
                        (k, v, gv) -> N(k) + ":" + N(v) + "+" + N(gv))
                .to("out"));
        define("global_table_left_join_rekeyed", b -> in(b)
                .selectKey((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1))
                .leftJoin(b.<String, String>globalTable("gin"),
                        (k, v) -> k,
                        (k, v, gv) -> N(k) + ":" + N(v) + "+" + N(gv))
                .to("out"));

        // -- stream-stream joins -------------------------------------------------------
        define("stream_stream_join", b -> in(b)
                .join(in2(b), (v, ov) -> N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3)))
                .to("out"));
        define("stream_stream_left_join", b -> in(b)
                .leftJoin(in2(b), (v, ov) -> N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3)))
                .to("out"));
        define("stream_stream_outer_join", b -> in(b)
                .outerJoin(in2(b), (k, v, ov) -> N(k) + ":" + N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3)))
                .to("out"));
        define("stream_stream_outer_join_asymmetric", b -> in(b)
                .outerJoin(in2(b), (v, ov) -> N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3))
                                .before(Duration.ofSeconds(2))
                                .after(Duration.ofSeconds(6)))
                .to("out"));
        define("stream_stream_left_join_no_grace", b -> in(b)
                .leftJoin(in2(b), (v, ov) -> N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceWithNoGrace(Duration.ofSeconds(5)))
                .to("out"));
        define("stream_stream_left_join_rekeyed", b -> in(b)
                .selectKey((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1))
                .leftJoin(in2(b), (v, ov) -> N(v) + "+" + N(ov),
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3)))
                .to("out"));
        define("stream_stream_self_join", b -> {
            KStream<String, String> in = in(b);
            in.join(in, (v, ov) -> N(v) + "+" + N(ov),
                            JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(5), Duration.ofSeconds(3)))
                    .to("out");
        });

        // KGroupedTable (KTable.groupBy) and suppress(untilTimeLimit).
        define("table_group_by_count", b -> T(b.<String, String>table("tin")
                .groupBy((k, v) -> KeyValue.pair(v.isEmpty() ? null : v.substring(0, 1), v))
                .count()));
        define("table_group_by_reduce", b -> T(b.<String, String>table("tin")
                .groupBy((k, v) -> KeyValue.pair(String.valueOf(v.length()), k + v))
                .reduce((a, v) -> a + v, (a, v) -> remove(a, v))));
        define("table_group_by_aggregate", b -> T(b.<String, String>table("tin")
                .groupBy((k, v) -> KeyValue.pair(v.isEmpty() ? "empty" : v.substring(v.length() - 1), v))
                .aggregate(() -> 0L, (k, v, agg) -> agg + len(v), (k, v, agg) -> agg - len(v),
                        Materialized.with(Serdes.String(), Serdes.Long()))));
        define("table_group_by_same_key", b -> T(b.<String, String>table("tin")
                .groupBy((k, v) -> KeyValue.pair(k, v.isEmpty() ? null : v))
                .reduce((a, v) -> a + v, (a, v) -> remove(a, v))));
        define("table_filter_group_by_count_filter", b -> T(b.<String, String>table("tin")
                .filter((k, v) -> v.length() > 0)
                .groupBy((k, v) -> KeyValue.pair(v.substring(0, 1), v))
                .count()
                .filter((k, v) -> v % 2 == 0)));
        define("suppress_time_limit_count", b -> T(in(b).groupByKey().count()
                .suppress(Suppressed.untilTimeLimit(Duration.ofSeconds(5), Suppressed.BufferConfig.unbounded()))));
        define("suppress_time_limit_table", b -> b.<String, String>table("tin")
                .suppress(Suppressed.untilTimeLimit(Duration.ofSeconds(5), Suppressed.BufferConfig.unbounded()))
                .toStream()
                .to("out"));
        define("suppress_time_limit_max_records", b -> T(in(b).groupByKey().count()
                .suppress(Suppressed.untilTimeLimit(Duration.ofSeconds(5),
                        Suppressed.BufferConfig.maxRecords(2).emitEarlyWhenFull()))));
        define("suppress_time_limit_max_bytes", b -> T(in(b).groupByKey().count()
                .suppress(Suppressed.untilTimeLimit(Duration.ofSeconds(5),
                        Suppressed.BufferConfig.maxBytes(100).emitEarlyWhenFull()))));
        define("suppress_time_limit_table_filter", b -> b.<String, String>table("tin")
                .suppress(Suppressed.untilTimeLimit(Duration.ofSeconds(5), Suppressed.BufferConfig.unbounded()))
                .filter((k, v) -> v.length() % 2 == 1)
                .toStream()
                .to("out"));
    }

    /** The README's {@code REMOVE(a, v)}: {@code a} without the first occurrence of {@code v}. */
    static String remove(String a, String v) {
        int i = a.indexOf(v);
        return i < 0 ? a : a.substring(0, i) + a.substring(i + v.length());
    }

    // -- cogroup (KIP-150) -----------------------------------------------------------

    /** The README's {@code COG(g1, g2)}: g1 adds len(v), g2 adds 10 * len(v). */
    static CogroupedKStream<String, Long> COG(KGroupedStream<String, String> g1, KGroupedStream<String, String> g2) {
        return g1.<Long>cogroup((k, v, agg) -> agg + len(v)).cogroup(g2, (k, v, agg) -> agg + 10L * len(v));
    }

    static {
        define("cogroup_aggregate", b -> T(COG(in(b).groupByKey(), in2(b).groupByKey())
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))));
        define("cogroup_aggregate_filter", b -> T(COG(in(b).groupByKey(), in2(b).groupByKey())
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))
                .filter((k, v) -> v % 2 == 0)));
        define("cogroup_rekeyed", b -> T(COG(in(b).groupByKey(),
                        in2(b).groupBy((k, v) -> v == null || v.isEmpty() ? null : v.substring(0, 1)))
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))));
        define("cogroup_tumbling", b -> WT(COG(in(b).groupByKey(), in2(b).groupByKey())
                .windowedBy(TUMBLING)
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))));
        define("cogroup_hopping", b -> WT(COG(in(b).groupByKey(), in2(b).groupByKey())
                .windowedBy(HOPPING)
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))));
        define("cogroup_sliding", b -> WT(COG(in(b).groupByKey(), in2(b).groupByKey())
                .windowedBy(SLIDING)
                .aggregate(() -> 0L, Materialized.with(Serdes.String(), Serdes.Long()))));
        define("cogroup_session", b -> WT(COG(in(b).groupByKey(), in2(b).groupByKey())
                .windowedBy(SESSION)
                .aggregate(() -> 0L, (k, x, y) -> x + y, Materialized.with(Serdes.String(), Serdes.Long()))));

        // Table-table joins: the tables "tin" and "tin2".
        define("table_table_join", b -> b.<String, String>table("tin")
                .join(b.<String, String>table("tin2"), (v, ov) -> N(v) + "+" + N(ov))
                .toStream().to("out"));
        define("table_table_left_join", b -> b.<String, String>table("tin")
                .leftJoin(b.<String, String>table("tin2"), (v, ov) -> N(v) + "+" + N(ov))
                .toStream().to("out"));
        define("table_table_outer_join", b -> b.<String, String>table("tin")
                .outerJoin(b.<String, String>table("tin2"), (v, ov) -> N(v) + "+" + N(ov))
                .toStream().to("out"));
        define("table_table_outer_join_materialized", b -> b.<String, String>table("tin")
                .outerJoin(b.<String, String>table("tin2"), (v, ov) -> N(v) + "+" + N(ov),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("joined"))
                .toStream().to("out"));
        define("table_table_join_derived", b -> b.<String, String>table("tin")
                .filter((k, v) -> v.length() % 2 == 1)
                .leftJoin(b.<String, String>table("tin2").mapValues(v -> upper(v)),
                        (v, ov) -> N(v) + "+" + N(ov))
                .filter((k, v) -> v.length() % 2 == 0)
                .toStream().to("out"));
        define("table_table_join_chained", b -> {
            KTable<String, String> other = b.table("tin2");
            b.<String, String>table("tin")
                    .outerJoin(other, (v, ov) -> N(v) + "+" + N(ov))
                    .join(other.mapValues(v -> v + "!"), (v, ov) -> N(v) + "/" + N(ov))
                    .toStream().to("out");
        });
        define("table_table_join_count", b -> in(b).groupByKey().count()
                .outerJoin(b.<String, String>table("tin"), (c, v) -> S(c) + "#" + N(v))
                .toStream().to("out"));
        define("stream_join_of_table_table_join", b -> in(b)
                .leftJoin(b.<String, String>table("tin")
                                .leftJoin(b.<String, String>table("tin2"), (v, ov) -> N(v) + "+" + N(ov)),
                        (v, tv) -> N(v) + "/" + N(tv))
                .to("out"));

        // Foreign-key joins: a value's first character is the key of "tin2" it joins.
        define("fk_join", b -> b.<String, String>table("tin")
                .join(b.<String, String>table("tin2"), v -> v.isEmpty() ? null : v.substring(0, 1),
                        (v, ov) -> N(v) + "+" + N(ov))
                .toStream().to("out"));
        define("fk_left_join", b -> b.<String, String>table("tin")
                .leftJoin(b.<String, String>table("tin2"), v -> v.isEmpty() ? null : v.substring(0, 1),
                        (v, ov) -> N(v) + "+" + N(ov))
                .toStream().to("out"));
        define("fk_left_join_materialized", b -> b.<String, String>table("tin")
                .leftJoin(b.<String, String>table("tin2"), v -> v.isEmpty() ? null : v.substring(0, 1),
                        (v, ov) -> N(v) + "+" + N(ov),
                        Materialized.<String, String, KeyValueStore<Bytes, byte[]>>as("fk-joined"))
                .toStream().to("out"));
        define("fk_left_join_derived", b -> b.<String, String>table("tin")
                .filter((k, v) -> v.length() != 2)
                .leftJoin(b.<String, String>table("tin2").mapValues(v -> v + "!"),
                        v -> v.isEmpty() ? null : v.substring(0, 1), (v, ov) -> N(v) + "+" + N(ov))
                .mapValues(v -> upper(v))
                .toStream().to("out"));
        define("fk_join_then_table_join", b -> {
            KTable<String, String> other = b.table("tin2");
            b.<String, String>table("tin")
                    .join(other, v -> v.isEmpty() ? null : v.substring(0, 1), (v, ov) -> N(v) + "+" + N(ov))
                    .leftJoin(other, (v, ov) -> N(v) + "/" + N(ov))
                    .toStream().to("out");
        });
    }
}
