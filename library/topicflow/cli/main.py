"""`topicflow`: describe an application's topology, create its topics.

topicflow describe myapp.topology:build_topology
topicflow topics myapp.topology:streams --partitions 4

Installed distributions add commands through the `topicflow.cli` entry points
(a function given the subparsers to add to): the dev tooling adds
`topicflow dev up|env|down`, the example application `topicflow demo`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from topicflow.errors import TopicflowError

COMMANDS_GROUP = "topicflow.cli"

_TARGET_HELP = (
    "MODULE:ATTR, ATTR a Topology, a KafkaStreams or a function returning one; "
    "or the name of an installed application (topicflow.apps entry points)"
)


def _describe(args: argparse.Namespace) -> int:
    from topicflow.cli.apps import load_app

    print(load_app(args.app).topology.describe())
    return 0


def _topics(args: argparse.Namespace) -> int:
    from topicflow.cli.apps import load_app
    from topicflow.cli.topics import create_topics

    return create_topics(
        load_app(args.app),
        args.partitions,
        args.replication_factor,
        args.list,
        args.application_id,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="topicflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    describe = sub.add_parser("describe", help="print an application's topology")
    describe.add_argument("app", metavar="APP", help=_TARGET_HELP)
    describe.set_defaults(func=_describe)

    topics = sub.add_parser(
        "topics", help="create the topics an application needs (inputs, outputs, internal topics)"
    )
    topics.add_argument("app", metavar="APP", help=_TARGET_HELP)
    topics.add_argument("--partitions", type=int, default=4)
    topics.add_argument("--replication-factor", type=int, default=-1)
    topics.add_argument(
        "--application-id",
        default=None,
        help="names the internal topics; taken from the config when APP is a KafkaStreams",
    )
    topics.add_argument(
        "--list", action="store_true", help="only print the topic names, create nothing"
    )
    topics.set_defaults(func=_topics)

    for point in sorted(entry_points(group=COMMANDS_GROUP), key=lambda p: p.name):
        add_command: Callable[[Any], None] = point.load()
        add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not getattr(args, "own_logging", False):
        from topicflow.runtime.runner import configure_logging

        configure_logging()
    try:
        code: int = args.func(args)
    except TopicflowError as error:
        print(f"topicflow: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] if len(sys.argv) > 1 else None))
