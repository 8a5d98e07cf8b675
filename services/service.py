"""What every service of the example system shares: its description and its `main`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from topicflow import KafkaStreams, StreamsConfig, Topology
from topicflow.config import KafkaEnv
from topicflow.errors import ConfigError, TopicflowError
from topicflow.runtime.runner import EXIT_BAD_SETUP, configure_logging, run_until_signal


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
        environ = os.environ if environ is None else environ
        settings = {**self.settings, **overrides}
        threads = environ.get("NUM_STREAM_THREADS")
        if threads and "num_stream_threads" not in overrides:
            try:
                settings["num_stream_threads"] = int(threads)
            except ValueError:
                raise ConfigError(
                    f"NUM_STREAM_THREADS must be a whole number, got {threads!r}"
                ) from None
        return StreamsConfig.from_env(self.application_name, environ, **settings)

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
            help="stream workers in this process (num_stream_threads; env NUM_STREAM_THREADS)",
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
            print(f"{self.name}: {error}", file=__import__("sys").stderr)
            return EXIT_BAD_SETUP
        return run_until_signal(self.name, lambda: KafkaStreams(topology, config))
