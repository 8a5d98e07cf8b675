"""`topicflow demo`: the example system on the embedded broker, live in the terminal.

One process, nothing but Python: a text generator thread produces sentences to
`textlines`; the Text Processor runs as a KafkaStreams application on the
embedded broker, writing `words`; a viewer reads `words` as another consumer
group would and shows rates and a sample once a second. Ctrl-C stops it all
cleanly (generator, then the application's commit, then the viewer).
"""

from __future__ import annotations

import collections
import itertools
import shutil
import signal
import sys
import tempfile
import threading
import time
from types import FrameType

from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.runtime.kafka_streams import KafkaStreams, State

PARTITIONS = 4
REFRESH_S = 1.0


class _Generator(threading.Thread):
    def __init__(self, broker: EmbeddedBroker, rate: float) -> None:
        super().__init__(name="demo-generator", daemon=True)
        self._broker = broker
        self._rate = rate
        self.stop = threading.Event()

    def run(self) -> None:
        from services.generate_text import produce_lines
        from services.sentences import sentences

        producer = self._broker.producer({})
        lines = itertools.takewhile(lambda _line: not self.stop.is_set(), sentences(seed=1))
        produce_lines(producer, "textlines", lines, self._rate, 0, progress=False)


class _Viewer:
    """Reads `words` in its own consumer group: what a downstream service would see."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._broker = broker
        self._consumer = broker.consumer(
            {"group.id": "topicflow-demo-viewer", "auto.offset.reset": "latest"}
        )
        self._consumer.subscribe(["words"])
        self.sample: collections.deque[str] = collections.deque(maxlen=14)

    def read(self) -> None:
        for message in self._consumer.consume(5000, 0.05):
            value = message.value()
            if value is not None:
                self.sample.append(value.decode())

    def close(self) -> None:
        self._consumer.close()


def _total(broker: EmbeddedBroker, topic: str) -> int:
    return sum(broker.end_offsets(topic))


def run_demo(seconds: float = 0, rate: float = 2000) -> int:
    from services.text_processor import SERVICE

    broker = EmbeddedBroker(default_partitions=PARTITIONS)
    broker.create_topics([TopicSpec("textlines", PARTITIONS), TopicSpec("words", PARTITIONS)])
    state_dir = tempfile.mkdtemp(prefix="topicflow-demo-")
    # An empty environment: the demo always runs on the embedded broker, whatever KAFKA_URL says.
    config = SERVICE.config(environ={}, state_dir=state_dir)
    streams = KafkaStreams(SERVICE.topology(environ={}), config, broker=broker)
    generator = _Generator(broker, rate)
    viewer = _Viewer(broker)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, on_signal)
    previous_term = signal.signal(signal.SIGTERM, on_signal)
    live = sys.stdout.isatty()
    started = time.monotonic()
    try:
        streams.start()
        generator.start()
        last = (time.monotonic(), 0, 0)
        while not stop.wait(REFRESH_S):
            viewer.read()
            now = time.monotonic()
            lines, words = _total(broker, "textlines"), _total(broker, "words")
            elapsed = now - last[0]
            line_rate = (lines - last[1]) / elapsed
            word_rate = (words - last[2]) / elapsed
            last = (now, lines, words)
            _show(live, streams, lines, words, line_rate, word_rate, list(viewer.sample))
            if streams.state is State.ERROR:
                break
            if seconds and now - started >= seconds:
                break
    finally:
        generator.stop.set()
        generator.join(5)
        closed = streams.close(10)
        viewer.close()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        shutil.rmtree(state_dir, ignore_errors=True)
    lines, words = _total(broker, "textlines"), _total(broker, "words")
    print(f"demo stopped: {lines:,} lines in, {words:,} words out; {streams.metrics()}")
    if streams.error is not None:
        print(f"topicflow demo: the Text Processor failed: {streams.error}", file=sys.stderr)
        return 1
    return 0 if closed else 1


def _show(
    live: bool,
    streams: KafkaStreams,
    lines: int,
    words: int,
    line_rate: float,
    word_rate: float,
    sample: list[str],
) -> None:
    text = (
        "topicflow demo: generator -> textlines -> Text Processor -> words "
        "(embedded broker; Ctrl-C stops)\n"
        f"  Text Processor  {streams.state.value:<12} tasks {_tasks(streams)}\n"
        f"  lines in   {line_rate:>10,.0f}/s   total {lines:>12,}\n"
        f"  words out  {word_rate:>10,.0f}/s   total {words:>12,}\n"
        f"  latest words: {' '.join(sample)}\n"
    )
    if live:
        # Redraw in place: home the cursor, clear to the end of the screen.
        sys.stdout.write("\x1b[H\x1b[J" + text)
    else:
        sys.stdout.write(text.splitlines()[2].strip() + " | " + text.splitlines()[3].strip() + "\n")
    sys.stdout.flush()


def _tasks(streams: KafkaStreams) -> str:
    return ", ".join(t for tasks in streams.tasks().values() for t in tasks) or "-"
