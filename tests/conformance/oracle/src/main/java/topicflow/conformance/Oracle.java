package topicflow.conformance;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonFactoryBuilder;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.json.JsonWriteFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.test.TestRecord;

/**
 * The Kafka Streams side of the conformance suite (see tests/conformance/README.md).
 *
 * <p>Reads cases, one JSON object a line, from standard input (or from the file named by
 * the first argument), runs each through Kafka Streams' TopologyTestDriver and writes one
 * JSON result a line to standard output, in the same order. Nothing else is written to
 * standard output; a case that cannot be read or run still gets its line, with "error" set.
 *
 * <p>System properties: {@code conformance.threads} (cases run at once, default the number
 * of processors) and {@code conformance.state.root} (where the drivers' state directories
 * go, default /dev/shm when writable, else java.io.tmpdir).
 */
public final class Oracle {

    private static final long CACHE_BYTES = 10L * 1024 * 1024;

    /**
     * Output is pure ASCII (everything else escaped as \\uXXXX), so that any String, a lone
     * surrogate included, reaches the reader unchanged whatever encoding it reads with.
     */
    private static final JsonFactory JSON =
            new JsonFactoryBuilder().enable(JsonWriteFeature.ESCAPE_NON_ASCII).build();
    private static final ObjectMapper MAPPER = new ObjectMapper(JSON);

    /** The driver settings of each caching mode; each case runs on a copy with its own state.dir. */
    private static final Properties CACHING_OFF = baseProperties(0);
    private static final Properties CACHING_ON = baseProperties(CACHE_BYTES);

    /** The parent of each case's state directory, removed when the run ends. */
    private final Path stateRoot;
    private final AtomicLong caseNumber = new AtomicLong();

    private Oracle(Path stateRoot) {
        this.stateRoot = stateRoot;
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        // Keep the real standard output for the results alone; anything that prints to
        // System.out (a library, a stray debug line) goes to standard error instead.
        Writer out = new BufferedWriter(
                new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8),
                1 << 16);
        System.setOut(System.err);

        int threads = Math.max(1, Integer.getInteger(
                "conformance.threads", Runtime.getRuntime().availableProcessors()));
        // Each case's stores are RocksDB databases that TopologyTestDriver flushes, and whose
        // offsets it checkpoints with an fsync, after every record: on a disk that is most of
        // the run (about 6x slower than on tmpfs), so the state goes to memory where it can.
        Path stateRoot = Files.createTempDirectory(stateParent(), "conformance-oracle-");
        ExecutorService pool = Executors.newFixedThreadPool(threads, runnable -> {
            Thread thread = new Thread(runnable, "case-runner");
            thread.setDaemon(true);
            return thread;
        });
        try (BufferedReader lines = args.length > 0
                ? Files.newBufferedReader(Paths.get(args[0]), StandardCharsets.UTF_8)
                : new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 16)) {
            Oracle oracle = new Oracle(stateRoot);
            // Cases run on the pool, results are written in input order; a few cases per
            // thread in flight keep every thread busy without reading all input ahead.
            ArrayDeque<Future<String>> pending = new ArrayDeque<>();
            String line;
            while ((line = lines.readLine()) != null) {
                if (line.isBlank()) {
                    continue;
                }
                String caseLine = line;
                pending.add(pool.submit(() -> oracle.runLine(caseLine)));
                if (pending.size() >= 4 * threads) {
                    writeLine(out, pending.poll());
                }
            }
            while (!pending.isEmpty()) {
                writeLine(out, pending.poll());
            }
            out.flush();
        } finally {
            pool.shutdownNow();
            deleteTree(stateRoot);
        }
    }

    private static Path stateParent() {
        String configured = System.getProperty("conformance.state.root");
        if (configured != null) {
            return Paths.get(configured);
        }
        Path shm = Paths.get("/dev/shm");
        if (Files.isDirectory(shm) && Files.isWritable(shm)) {
            return shm;
        }
        return Paths.get(System.getProperty("java.io.tmpdir"));
    }

    private static void writeLine(Writer out, Future<String> result) throws IOException, InterruptedException {
        try {
            out.write(result.get());
        } catch (ExecutionException e) {
            // runLine turns every exception into an "error"; what reaches here is an Error.
            throw new IllegalStateException("a case runner failed", e.getCause());
        }
        out.write('\n');
    }

    private static Properties baseProperties(long cacheBytes) {
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, "conformance");
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "dummy:1234");
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.toString(cacheBytes));
        return props;
    }

    /** Reads one case line, runs it and returns its result line (without the newline). */
    private String runLine(String line) throws IOException {
        JsonNode id = null;
        Result result;
        try {
            JsonNode c = MAPPER.readTree(line);
            id = c.get("id");
            result = run(c.path("topology").asText(), c.path("caching").asBoolean(false), c.path("steps"));
        } catch (IOException | RuntimeException e) {
            result = new Result();
            result.error = "bad case line: " + describe(e);
        }
        StringWriter text = new StringWriter(256);
        try (JsonGenerator json = JSON.createGenerator(text)) {
            json.writeStartObject();
            json.writeFieldName("id");
            if (id == null) {
                json.writeNull();
            } else {
                MAPPER.writeTree(json, id);
            }
            json.writeObjectFieldStart("outputs");
            for (Map.Entry<String, List<TestRecord<String, String>>> topic : result.outputs.entrySet()) {
                json.writeArrayFieldStart(topic.getKey());
                for (TestRecord<String, String> r : topic.getValue()) {
                    json.writeStartArray();
                    json.writeString(r.key());
                    json.writeString(r.value());
                    json.writeNumber(r.timestamp());
                    json.writeEndArray();
                }
                json.writeEndArray();
            }
            json.writeEndObject();
            json.writeStringField("error", result.error);
            json.writeEndObject();
        }
        return text.toString();
    }

    /** What one case produced: output topics in name order, and the first error if any. */
    private static final class Result {
        final Map<String, List<TestRecord<String, String>>> outputs = new TreeMap<>();
        String error;
    }

    private Result run(String name, boolean caching, JsonNode steps) {
        Result result = new Result();
        Topology topology = Topologies.build(name);
        if (topology == null) {
            result.error = "unknown topology " + name;
            return result;
        }
        Path stateDir = stateRoot.resolve(Long.toString(caseNumber.getAndIncrement()));
        Properties props = new Properties();
        props.putAll(caching ? CACHING_ON : CACHING_OFF);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        TopologyTestDriver driver = null;
        try {
            driver = new TopologyTestDriver(topology, props, Instant.ofEpochMilli(0));
            pipe(driver, steps);
        } catch (RuntimeException e) {
            result.error = describe(e);
        }
        if (driver != null) {
            try {
                readOutputs(driver, result.outputs);
            } catch (RuntimeException e) {
                if (result.error == null) {
                    result.error = describe(e);
                }
            }
            try {
                driver.close();
            } catch (RuntimeException e) {
                if (result.error == null) {
                    result.error = describe(e);
                }
            }
        }
        deleteTree(stateDir);
        return result;
    }

    private static void pipe(TopologyTestDriver driver, JsonNode steps) {
        // Input topics are made on first use: a topology reads only some of in, in2 and tin.
        Map<String, TestInputTopic<String, String>> inputs = new HashMap<>(4);
        StringSerializer serializer = new StringSerializer();
        for (JsonNode step : steps) {
            String topic = step.get(0).asText();
            if (topic.equals("wall")) {
                driver.advanceWallClockTime(Duration.ofMillis(step.get(1).asLong()));
            } else {
                TestInputTopic<String, String> input = inputs.computeIfAbsent(
                        topic, t -> driver.createInputTopic(t, serializer, serializer));
                input.pipeInput(text(step.get(1)), text(step.get(2)), step.get(3).asLong());
            }
        }
    }

    private static void readOutputs(
            TopologyTestDriver driver, Map<String, List<TestRecord<String, String>>> outputs) {
        StringDeserializer deserializer = new StringDeserializer();
        for (String topic : driver.producedTopicNames()) {
            if (topic.startsWith("out")) {
                TestOutputTopic<String, String> output =
                        driver.createOutputTopic(topic, deserializer, deserializer);
                List<TestRecord<String, String>> records = output.readRecordsToList();
                if (!records.isEmpty()) {
                    outputs.put(topic, records);
                }
            }
        }
    }

    private static String text(JsonNode node) {
        return node == null || node.isNull() ? null : node.asText();
    }

    /** The root cause's class and message: Kafka wraps what the topology threw in StreamsException. */
    private static String describe(Throwable thrown) {
        Throwable root = thrown;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        return root.getClass().getSimpleName() + ": " + root.getMessage();
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(root)) {
            List<Path> deepestFirst = new ArrayList<>();
            paths.sorted(Comparator.reverseOrder()).forEach(deepestFirst::add);
            for (Path path : deepestFirst) {
                Files.deleteIfExists(path);
            }
        } catch (IOException | UncheckedIOException e) {
            // A directory left behind costs space, not correctness.
        }
    }
}
