"""What the generators share: connecting a producer to a topic that must exist, and
counting what the broker refused."""

from __future__ import annotations

import signal
import sys
from typing import Any

from topicflow.brokers.base import Producer
from topicflow.config import StreamsConfig
from topicflow.errors import MissingSourceTopics
from topicflow.runtime.kafka_streams import broker_for


class DeliveryCounter:
    """A delivery callback: counts the records the broker refused, keeps the first reason."""

    def __init__(self) -> None:
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, error: Any, message: Any) -> None:
        if error is None:
            return
        self.failed += 1
        if self.first_error is None:
            text = error.str() if hasattr(error, "str") else str(error)
            self.first_error = str(text)


def producer_for(config: StreamsConfig, topic: str, service: str) -> Producer:
    """A producer to `topic` on the configured Kafka; the topic must exist.

    Raises TopicflowError with one line saying what to do: the dev broker and
    Heroku do not create topics on first use, so a missing topic would
    otherwise fail every record after a metadata timeout.
    """
    broker = broker_for(config)
    timeout = config.startup_timeout_ms / 1000
    broker.check_reachable(timeout)
    if topic not in broker.admin().partition_counts([topic], timeout):
        raise MissingSourceTopics(
            f"topic {topic!r} does not exist; create it (`topicflow topics {service} "
            "--partitions N`, or your cluster's tooling) and start again"
        )
    return broker.producer({**config.producer_client_config(), "linger.ms": 20})


# Heroku stops a dyno with SIGTERM and 30 s of grace: time enough to deliver
# what is queued. Seconds given to that flush.
STOP_FLUSH_S = 10.0


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a generator stops as on Ctrl-C."""

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def flush_on_stop(producer: Producer | None, name: str) -> int:
    """Deliver what is queued before exiting; the exit code of a stop."""
    if producer is None:
        return 0
    left = producer.flush(STOP_FLUSH_S)
    if left:
        print(f"{name}: stopped with {left:,} lines not delivered", file=sys.stderr)
        return 1
    return 0
