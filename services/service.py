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
SERVICE_SETTINGS: Mapping[str, Any] = {
    "default_key_serde": Serdes.String(),
    "default_value_serde": Serdes.String(),
    "commit_interval_ms": 1000,
    "idempotent_state": True,
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

    def config(self, environ: Mapping[str, str] | None = None, **overrides: Any) -> StreamsConfig:
        """The service's settings, then `TOPICFLOW_*` environment variables, then `overrides`."""
        environ = os.environ if environ is None else environ
        config = StreamsConfig.from_env(self.application_name, environ, **self.settings)
        return config.with_overrides(**overrides) if overrides else config

    def prefix(self, environ: Mapping[str, str] | None = None) -> str:
        return KafkaEnv.read(os.environ if environ is None else environ).prefix

    def topology(self, environ: Mapping[str, str] | None = None) -> Topology:
        return self.build_topology(self.prefix(environ))

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
