"""`topicflow dev up|down|env`: the development services (see `topicflow_dev`)."""

from __future__ import annotations

import argparse

import topicflow_dev as dev


def add_dev_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="start/stop a local Kafka broker and PostgreSQL for development and tests",
        description=(
            "A real Apache Kafka broker (KRaft, single node) and a private PostgreSQL 15, "
            f"both on 127.0.0.1, with their files in {dev.dev_dir()} "
            "(set TOPICFLOW_DEV_DIR to move it)."
        ),
    )
    commands = parser.add_subparsers(dest="dev_command", metavar="COMMAND", required=True)
    commands.add_parser(
        "up", help="start both services (a no-op for a running one) and print their URLs"
    ).set_defaults(func=_up)
    commands.add_parser("down", help="stop both services").set_defaults(func=_down)
    commands.add_parser(
        "env", help='print export lines for a shell: eval "$(topicflow dev env)"'
    ).set_defaults(func=_env)


def _up(args: argparse.Namespace) -> int:
    env = dev.env()
    kafka = "started" if dev.start_kafka() else "already running"
    postgres = "started" if dev.start_postgres() else "already running"
    print(f"Kafka       {env.kafka_url}  ({kafka})")
    print(f"PostgreSQL  {env.database_url}  ({postgres})")
    print('Set KAFKA_URL and DATABASE_URL in your shell with: eval "$(topicflow dev env)"')
    return 0


def _down(args: argparse.Namespace) -> int:
    kafka = "stopped" if dev.stop_kafka() else "was not running"
    postgres = "stopped" if dev.stop_postgres() else "was not running"
    print(f"Kafka       {kafka}")
    print(f"PostgreSQL  {postgres}")
    return 0


def _env(args: argparse.Namespace) -> int:
    print(dev.env().exports(), end="")
    return 0
