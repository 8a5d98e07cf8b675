"""What every service of the example system shares: its description and its `main`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from topicflow import KafkaStreams, Serdes, StreamsConfig, Topology
from topicflow.config import KafkaEnv
from topicflow.errors import TopicflowError
from topicflow.runtime.runner import EXIT_BAD_SETUP, configure_logging, run_until_signal

# What every service sets on top of Kafka Streams' defaults: as the original
# Java example, string keys and values and 1 s commits; and idempotent state, so
# that counts and alerts stay exact when a dyno is killed (Heroku's plans grant
# no transactions for exactly_once_v2).
#
# And one bad record never stops a service: a record that cannot be read,
# processed or produced (a 1 MB word whose repartition record is too large, a
# log line not in the format, a word the database cannot index) is skipped,
# counted, logged and sent with its raw bytes to the service's dead-letter
# topic, `<prefix><service>-dlq` (Kafka Streams' handlers and KIP-1034's DLQ).
SERVICE_SETTINGS: Mapping[str, Any] = {
    "default_key_serde": Serdes.String(),
    "default_value_serde": Serdes.String(),
    "commit_interval_ms": 1000,
    "idempotent_state": True,
    "deserialization_exception_handler": "log_and_continue",
    "processing_exception_handler": "log_and_continue",
    "production_exception_handler": "log_and_continue",
    # Each service's process only streams: fewer, cheaper garbage collections
    # (about 10% of the Aggregator's CPU time, runtime/gc_tuning.py).
    "tune_gc": True,
}


@dataclass(frozen=True)
class Service:
    """A stream processing service: its topology, config, and the topics it needs."""

    name: str  # the console command, e.g. "text-processor"
    application_name: str  # the application id without the prefix
    input_topics: tuple[str, ...]  # without the prefix
    output_topics: tuple[str, ...]
    build_topology: Callable[[str], Topology]
    # Settings this service puts on top of Kafka Streams' defaults.
    settings: Mapping[str, Any]

    @property
    def dead_letter_topic(self) -> str:
        """Where the records this service skips go, without the prefix."""
        return f"{self.name}-dlq"

    def config(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> StreamsConfig:
        """The service's settings, then `TOPICFLOW_*` environment variables, then `overrides`."""
        environ = os.environ if environ is None else environ
        settings = {
            "errors_dead_letter_queue_topic_name": self.prefix(environ) + self.dead_letter_topic,
            **self.settings,
        }
        config = StreamsConfig.from_env(self.application_name, environ, **settings)
        return config.with_overrides(**overrides) if overrides else config

    def prefix(self, environ: Mapping[str, str] | None = None) -> str:
        return KafkaEnv.read(os.environ if environ is None else environ).prefix

    def topology(self, environ: Mapping[str, str] | None = None) -> Topology:
        return self.build_topology(self.prefix(environ))

    def streams(self, environ: Mapping[str, str] | None = None) -> KafkaStreams:
        """The service as an application, unstarted: what `topicflow describe|topics NAME`
        load (the `topicflow.apps` entry points in pyproject.toml)."""
        return KafkaStreams(self.topology(environ), self.config(environ))

    def main(self, argv: list[str] | None = None, description: str = "") -> int:
        parser = argparse.ArgumentParser(prog=self.name, description=description)
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="stream workers in this process (num_stream_threads)",
        )
        parser.add_argument("--describe", action="store_true", help="print the topology and exit")
        args = parser.parse_args(argv)
        configure_logging()
        try:
            topology = self.topology()
            if args.describe:
                print(topology.describe())
                return 0
            overrides = {} if args.threads is None else {"num_stream_threads": args.threads}
            config = self.config(**overrides)
        except TopicflowError as error:
            print(f"{self.name}: {error}", file=sys.stderr)
            return EXIT_BAD_SETUP
        return run_until_signal(self.name, lambda: KafkaStreams(topology, config))
