"""Join applications for the tests on the real broker, run as their own processes.

    python -m tests.integration.join_app stream-table

reads Heroku's variables as the services do (`KAFKA_URL`, `KAFKA_PREFIX`,
`TOPICFLOW_*`), so a test can start, scale out and SIGKILL instances of it.
Each topology's output is a deterministic function of its input, which the
tests compute on their own (ground truth).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta

from topicflow import (
    JoinWindows,
    KafkaStreams,
    Serdes,
    StreamsBuilder,
    StreamsConfig,
    Topology,
)
from topicflow.runtime.runner import configure_logging, run_until_signal

APPLICATION = "join-app"


def enrich_order(order: str, customer: str | None) -> str:
    """An order joined with its customer's profile ("None" when the table has none)."""
    return f"{order}|{customer}"


def stream_table(prefix: str) -> Topology:
    """Orders, keyed by customer, enriched with the customer's current profile."""
    builder = StreamsBuilder()
    customers = builder.table(f"{prefix}customers")
    builder.stream(f"{prefix}orders").left_join(customers, enrich_order).to(f"{prefix}enriched")
    return builder.build()


def stream_stream(prefix: str) -> Topology:
    """Impressions joined with the clicks on the same ad within 10 s; a grace of 10 min
    (in event time) covers how far apart the two topics' producers may drift."""
    builder = StreamsBuilder()
    clicks = builder.stream(f"{prefix}clicks")
    window = JoinWindows.of_time_difference_and_grace(timedelta(seconds=10), timedelta(minutes=10))
    (
        builder.stream(f"{prefix}impressions")
        .join(clicks, lambda impression, click: f"{impression}|{click}", window)
        .to(f"{prefix}attributed")
    )
    return builder.build()


TOPOLOGIES: dict[str, Callable[[str], Topology]] = {
    "stream-table": stream_table,
    "stream-stream": stream_stream,
}


def main(argv: list[str]) -> int:
    configure_logging()
    [name] = argv
    build = TOPOLOGIES[name]

    def make() -> KafkaStreams:
        config = StreamsConfig.from_env(
            f"{APPLICATION}-{name}",
            default_key_serde=Serdes.String(),
            default_value_serde=Serdes.String(),
        )
        prefix = config.application_id[: -len(f"{APPLICATION}-{name}")]
        return KafkaStreams(build(prefix), config)

    return run_until_signal(f"{APPLICATION}-{name}", make)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
