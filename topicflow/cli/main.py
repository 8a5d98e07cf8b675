"""`topicflow`: describe a service's topology, create its topics, run the demo, run dev services.

topicflow describe text-processor
topicflow topics text-processor --partitions 4
topicflow demo
topicflow dev up | env | down
"""

from __future__ import annotations

import argparse
import sys

from topicflow.cli.dev import add_dev_parser
from topicflow.errors import TopicflowError


def _service(name: str) -> object:
    from services.registry import SERVICES

    try:
        return SERVICES[name]
    except KeyError:
        raise TopicflowError(
            f"unknown service {name!r}; the services are {', '.join(sorted(SERVICES))}"
        ) from None


def _describe(args: argparse.Namespace) -> int:
    from services.service import Service

    service = _service(args.service)
    assert isinstance(service, Service)
    print(service.topology().describe())
    return 0


def _topics(args: argparse.Namespace) -> int:
    from topicflow.cli.topics import service_topics

    return service_topics(args.service, args.partitions, args.replication_factor, args.list)


def _demo(args: argparse.Namespace) -> int:
    from topicflow.cli.demo import run_demo

    return run_demo(seconds=args.seconds, rate=args.rate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="topicflow", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    describe = sub.add_parser("describe", help="print a service's topology")
    describe.add_argument("service")
    describe.set_defaults(func=_describe)

    topics = sub.add_parser(
        "topics", help="create the topics a service needs (inputs, outputs, internal topics)"
    )
    topics.add_argument("service")
    topics.add_argument("--partitions", type=int, default=4)
    topics.add_argument("--replication-factor", type=int, default=-1)
    topics.add_argument(
        "--list", action="store_true", help="only print the topic names, create nothing"
    )
    topics.set_defaults(func=_topics)

    demo = sub.add_parser(
        "demo", help="run the generator and the services on the embedded broker, live"
    )
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long; 0: Ctrl-C")
    demo.add_argument("--rate", type=float, default=2000, help="text lines per second")
    demo.set_defaults(func=_demo)

    add_dev_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command != "demo":
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
