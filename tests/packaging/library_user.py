"""What a user of the bare library runs: installed from its wheel alone, no extras.

Run by test_library_wheel.py with the clean virtualenv's Python. It counts
words with a stateful topology, once in the TopologyTestDriver and once on
the embedded broker, and prints the counts; exit 0 means both agree.
"""

from __future__ import annotations

import sys
import time

from topicflow import (
    KafkaStreams,
    Materialized,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    Topology,
    TopologyTestDriver,
)
from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker

LINES = ["the cat sat", "on the mat", "The end"]
EXPECTED = {"the": 3, "cat": 1, "sat": 1, "on": 1, "mat": 1, "end": 1}


def build_topology() -> Topology:
    builder = StreamsBuilder()
    (
        builder.stream("lines")
        .flat_map_values(lambda line: line.lower().split())
        .group_by(lambda _key, word: word)
        .count(Materialized.as_("counts"))
        .to_stream()
        .map_values(str)
        .to("counts")
    )
    return builder.build()


def config(application_id: str) -> StreamsConfig:
    return StreamsConfig(
        application_id=application_id,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=100,
    )


def in_the_test_driver() -> dict[str, int]:
    with TopologyTestDriver(build_topology(), config("driver")) as driver:
        lines = driver.create_input_topic("lines")
        for line in LINES:
            lines.pipe_input(line)
        out = driver.create_output_topic("counts").read_key_values_to_map()
    return {str(k): int(v) for k, v in out.items()}


def on_the_embedded_broker() -> dict[str, int]:
    broker = EmbeddedBroker()
    broker.create_topics([TopicSpec("lines", 2), TopicSpec("counts", 2)])
    producer = broker.producer({})
    for line in LINES:
        producer.produce("lines", line.encode())
    producer.flush(1)
    streams = KafkaStreams(build_topology(), config("embedded"), broker=broker)
    streams.start()
    counts: dict[str, int] = {}
    deadline = time.monotonic() + 30
    try:
        while counts != EXPECTED and time.monotonic() < deadline:
            time.sleep(0.05)
            counts = {}
            for _p, _o, key, value, _ts, _h in broker.read_all("counts"):
                assert key is not None and value is not None
                counts[key.decode()] = int(value.decode())
    finally:
        streams.close(10)
    return counts


def main() -> int:
    driver = in_the_test_driver()
    embedded = on_the_embedded_broker()
    print(f"driver={sorted(driver.items())}")
    print(f"embedded={sorted(embedded.items())}")
    return 0 if driver == embedded == EXPECTED else 1


if __name__ == "__main__":
    sys.exit(main())
