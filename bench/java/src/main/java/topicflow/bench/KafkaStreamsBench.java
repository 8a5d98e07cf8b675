package topicflow.bench;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Branched;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;

/**
 * The blog's three topologies in Java Kafka Streams, as a Kafka Streams user would
 * write them, for the side-by-side bench (bench/compare.py). Settings match
 * topicflow's run: at-least-once, 1 s commits, the default record cache, one
 * stream thread, earliest offsets.
 *
 * <p>Usage: {@code KafkaStreamsBench TOPOLOGY BOOTSTRAP PREFIX APPLICATION_ID STATE_DIR [JDBC_URL]}
 * with TOPOLOGY one of text-processor, aggregator, anomaly-detector, and the joins of
 * bench/joins.py: stream-table-join, stream-stream-join. It runs until
 * SIGTERM and prints {@code RUNNING} once the group has assigned its tasks.
 */
public final class KafkaStreamsBench {
    private static final Duration WINDOW = Duration.ofSeconds(10);
    private static final Duration GRACE = Duration.ofMinutes(5);
    private static final Duration COMMIT_INTERVAL = Duration.ofSeconds(1);
    // How soon the PostgreSQL sink writes what a commit's cache flush sent it (see PostgresSink).
    private static final Duration SINK_WRITE_DELAY = Duration.ofMillis(50);
    private static final long URGENT_THRESHOLD = 100;
    private static final long EMAIL_THRESHOLD = 50;
    // Java's \W+ with Unicode classes: the Text Processor's split.
    private static final Pattern NON_WORD = Pattern.compile("\\W+", Pattern.UNICODE_CHARACTER_CLASS);

    private KafkaStreamsBench() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: KafkaStreamsBench TOPOLOGY BOOTSTRAP PREFIX APPLICATION_ID STATE_DIR [JDBC_URL]");
            System.exit(2);
        }
        String which = args[0];
        String prefix = args[2];
        Topology topology = switch (which) {
            case "text-processor" -> textProcessor(prefix);
            case "aggregator" -> aggregator(prefix, args.length > 5 ? args[5] : null);
            case "anomaly-detector" -> anomalyDetector(prefix);
            case "stream-table-join" -> streamTableJoin(prefix);
            case "stream-stream-join" -> streamStreamJoin(prefix);
            default -> throw new IllegalArgumentException("unknown topology " + which);
        };
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, args[3]);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, args[1]);
        props.put(StreamsConfig.STATE_DIR_CONFIG, args[4]);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, (int) COMMIT_INTERVAL.toMillis());
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");

        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("RUNNING");
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(30));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
    }

    /** textlines -> lowercased words -> words. */
    static Topology textProcessor(String prefix) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(prefix + "textlines")
                .flatMapValues(line -> Arrays.stream(NON_WORD.split(line.toLowerCase(Locale.ROOT)))
                        .filter(word -> !word.isEmpty())
                        .collect(Collectors.toList()))
                .to(prefix + "words");
        return builder.build();
    }

    /** words -> count per word per 10 s window -> PostgreSQL windowed_counts. */
    static Topology aggregator(String prefix, String jdbcUrl) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(prefix + "words")
                .groupBy((key, word) -> word)
                .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                .count(Materialized.as("windowed-counts"))
                .toStream()
                .process(() -> new PostgresSink(jdbcUrl));
        return builder.build();
    }

    /** loglines -> failed logins per user per 10 s window -> alerts above the thresholds. */
    static Topology anomalyDetector(String prefix) {
        StreamsBuilder builder = new StreamsBuilder();
        KStream<Windowed<String>, Long> counts = builder.<String, String>stream(prefix + "loglines")
                .filter((key, line) -> line != null && line.contains("action: login failed"))
                .selectKey((key, line) -> userId(line))
                .filter((user, line) -> user != null)
                .groupByKey()
                .windowedBy(TimeWindows.ofSizeAndGrace(WINDOW, GRACE))
                .count(Materialized.as("failed-logins"))
                .toStream();
        counts.split(Named.as("anomaly-"))
                .branch((window, count) -> count > URGENT_THRESHOLD,
                        Branched.withConsumer(urgent -> urgent
                                .map((window, count) -> alert(window, count, "urgent"))
                                .to(prefix + "anomalies")))
                .branch((window, count) -> count > EMAIL_THRESHOLD,
                        Branched.withConsumer(email -> email
                                .map((window, count) -> alert(window, count, "email"))
                                .to(prefix + "anomalies")));
        return builder.build();
    }

    /** orders (keyed by customer) left-joined with the customers table -> enriched. */
    static Topology streamTableJoin(String prefix) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(prefix + "orders")
                .leftJoin(builder.<String, String>table(prefix + "customers"),
                        (order, customer) -> order + "|" + customer)
                .to(prefix + "enriched");
        return builder.build();
    }

    /** impressions joined with clicks on the same ad within 10 s -> attributed. */
    static Topology streamStreamJoin(String prefix) {
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> clicks = builder.stream(prefix + "clicks");
        builder.<String, String>stream(prefix + "impressions")
                .join(clicks, (impression, click) -> impression + "|" + click,
                        JoinWindows.ofTimeDifferenceAndGrace(Duration.ofSeconds(10), GRACE))
                .to(prefix + "attributed");
        return builder.build();
    }

    /** The user id of a log line "user_id: NAME | ...", trimmed; null if malformed. */
    static String userId(String line) {
        int bar = line.indexOf('|');
        if (!line.startsWith("user_id:") || bar < 0) {
            return null;
        }
        String user = line.substring("user_id:".length(), bar).trim();
        return user.isEmpty() ? null : user;
    }

    static KeyValue<String, String> alert(Windowed<String> window, long count, String severity) {
        String json = String.format(Locale.ROOT,
                "{\"user_id\":\"%s\",\"window_start\":%d,\"count\":%d,\"severity\":\"%s\"}",
                window.key(), window.window().start(), count, severity);
        return KeyValue.pair(window.key(), json);
    }

    /**
     * Upserts the latest count of each (window, word) into windowed_counts, batched
     * per commit, as topicflow's sink writes once per commit.
     *
     * <p>The record cache forwards counts at each commit; a processor has no commit
     * hook, so a wall-clock punctuation writes them, soon after (SINK_WRITE_DELAY).
     * Once per commit interval, it fell up to a second after the commit, which
     * bench/compare.py's paced run measured as latency. Between commits the
     * punctuation finds nothing to write, unless the cache evicted.
     */
    static final class PostgresSink implements Processor<Windowed<String>, Long, Void, Void> {
        private final String jdbcUrl;
        private final Map<List<Object>, Long> pending = new HashMap<>();
        private Connection connection;

        PostgresSink(String jdbcUrl) {
            this.jdbcUrl = jdbcUrl;
        }

        @Override
        public void init(ProcessorContext<Void, Void> context) {
            if (jdbcUrl == null) {
                return; // counting only: no database in this run
            }
            try {
                connection = DriverManager.getConnection(jdbcUrl);
                connection.setAutoCommit(false);
                try (Statement statement = connection.createStatement()) {
                    statement.execute("CREATE TABLE IF NOT EXISTS windowed_counts (id serial PRIMARY KEY, "
                            + "time_window bigint NOT NULL, word text NOT NULL, count bigint NOT NULL)");
                    statement.execute("CREATE UNIQUE INDEX IF NOT EXISTS windowed_counts_window_word "
                            + "ON windowed_counts (time_window, word)");
                }
                connection.commit();
            } catch (SQLException error) {
                throw new IllegalStateException("PostgreSQL: " + error.getMessage(), error);
            }
            context.schedule(SINK_WRITE_DELAY, PunctuationType.WALL_CLOCK_TIME, now -> flush());
        }

        @Override
        public void process(Record<Windowed<String>, Long> record) {
            if (record.value() != null) {
                pending.put(List.of(record.key().window().start(), record.key().key()), record.value());
            }
        }

        private void flush() {
            if (pending.isEmpty() || connection == null) {
                pending.clear();
                return;
            }
            String upsert = "INSERT INTO windowed_counts (time_window, word, count) VALUES (?, ?, ?) "
                    + "ON CONFLICT (time_window, word) DO UPDATE SET count = EXCLUDED.count";
            try (PreparedStatement statement = connection.prepareStatement(upsert)) {
                for (Map.Entry<List<Object>, Long> entry : pending.entrySet()) {
                    statement.setLong(1, (Long) entry.getKey().get(0));
                    statement.setString(2, (String) entry.getKey().get(1));
                    statement.setLong(3, entry.getValue());
                    statement.addBatch();
                }
                statement.executeBatch();
                connection.commit();
                pending.clear();
            } catch (SQLException error) {
                throw new IllegalStateException("PostgreSQL: " + error.getMessage(), error);
            }
        }

        @Override
        public void close() {
            flush();
            if (connection != null) {
                try {
                    connection.close();
                } catch (SQLException ignored) {
                    // closing: nothing left to lose
                }
            }
        }
    }
}
