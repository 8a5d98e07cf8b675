package topicflow.conformance;

import java.time.Duration;

import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;

/**
 * The README's {@code Punctuating}: counts the records it sees, tags each with the count,
 * and forwards a tick with the count every 4 s of stream time and every 3 s of wall-clock time.
 */
final class Punctuating implements Processor<String, String, String, String> {

    private ProcessorContext<String, String> context;
    private long seen;

    @Override
    public void init(ProcessorContext<String, String> context) {
        this.context = context;
        context.schedule(Duration.ofMillis(4000), PunctuationType.STREAM_TIME,
                timestamp -> context.forward(new Record<>("stream-tick", String.valueOf(seen), timestamp)));
        context.schedule(Duration.ofMillis(3000), PunctuationType.WALL_CLOCK_TIME,
                timestamp -> context.forward(new Record<>("wall-tick", String.valueOf(seen), timestamp)));
    }

    @Override
    public void process(Record<String, String> record) {
        seen++;
        context.forward(record.withValue(Topologies.N(record.value()) + "#" + seen));
    }
}
