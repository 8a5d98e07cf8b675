"""generate-text: produce lines to `{prefix}textlines`.

Synthetic sentences by default, or the non-blank lines of a file or stdin.
A progress line goes to stderr every second.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator

from services.producing import DeliveryCounter, flush_on_stop, producer_for, stop_on_sigterm
from services.sentences import sentences
from topicflow.brokers.base import Producer
from topicflow.config import KafkaEnv, StreamsConfig
from topicflow.errors import StreamsException, TopicflowError
from topicflow.runtime.runner import EXIT_BAD_SETUP, configure_logging


def lines_from(source: str | None, seed: int) -> Iterator[str]:
    """Synthetic sentences, or the non-blank lines of a file (`-`: stdin)."""
    if source is None:
        return sentences(seed)
    stream: Iterable[str] = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    return (line.rstrip("\n") for line in stream if line.strip())


def produce_lines(
    producer: Producer,
    topic: str,
    lines: Iterable[str],
    rate: float,
    count: int,
    progress: bool = True,
) -> int:
    """Send up to `count` lines (0: all) at `rate` lines/s (0: as fast as possible)."""
    deliveries = DeliveryCounter()
    produce = producer.produce
    poll = producer.poll
    selected = itertools.islice(lines, count) if count else lines
    started = last_report = time.monotonic()
    sent = 0
    try:
        for line in selected:
            while True:
                try:
                    produce(topic, line.encode(), on_delivery=deliveries)
                    break
                except BufferError:
                    poll(0.05)
            sent += 1
            if sent % 1000 == 0:
                poll(0)
            if rate:
                # Pace against the start time, so the average rate holds whatever sleep's jitter.
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if progress:
                now = time.monotonic()
                if now - last_report >= 1.0:
                    elapsed = now - started
                    print(
                        f"generate-text: {sent:,} lines to {topic} ({sent / elapsed:,.0f} lines/s)",
                        file=sys.stderr,
                    )
                    last_report = now
    except KeyboardInterrupt:
        # Stopped (Ctrl-C, or SIGTERM on Heroku): deliver what is queued, say how much.
        left = producer.flush(30)
        print(
            f"generate-text: stopped after {sent - left - deliveries.failed:,} lines "
            f"delivered to {topic}",
            file=sys.stderr,
        )
        raise
    left = producer.flush(30)
    if deliveries.failed or left:
        raise StreamsException(
            f"{deliveries.failed + left:,} of {sent:,} lines were not delivered to {topic}"
            + (f" ({deliveries.first_error})" if deliveries.first_error else " (flush timed out)")
        )
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate-text", description="produce lines of text to {KAFKA_PREFIX}textlines"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="lines/s; 0: as fast as possible")
    parser.add_argument("--count", type=int, default=0, help="lines to send; 0: without end")
    parser.add_argument("--file", default=None, help="send this file's lines ('-': stdin)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic sentences")
    parser.add_argument("--topic", default=None, help="default: {KAFKA_PREFIX}textlines")
    args = parser.parse_args(argv)
    configure_logging()
    stop_on_sigterm()
    producer: Producer | None = None
    try:
        kafka = KafkaEnv.read(os.environ)
        if kafka.url is None:
            print(
                "generate-text: KAFKA_URL is not set, and the embedded broker lives inside one "
                "process: run `topicflow demo` to see the services on it",
                file=sys.stderr,
            )
            return EXIT_BAD_SETUP
        config = StreamsConfig.from_env("generate-text")
        topic = args.topic or f"{kafka.prefix}textlines"
        producer = producer_for(config, topic, "text-processor")
        lines = lines_from(args.file, args.seed)
        sent = produce_lines(producer, topic, lines, args.rate, args.count)
    except TopicflowError as error:
        print(f"generate-text: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except KeyboardInterrupt:
        return flush_on_stop(producer, "generate-text")
    except OSError as error:
        print(f"generate-text: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    print(f"generate-text: sent {sent:,} lines to {topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
