"""`topicflow demo`: the example application's command, added to the library's CLI
through the `topicflow.cli` entry points (pyproject.toml)."""

from __future__ import annotations

import argparse


def add_demo_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the example system on the embedded broker, live in the terminal"
    )
    demo.add_argument("--seconds", type=float, default=0, help="stop after this long; 0: Ctrl-C")
    demo.add_argument("--rate", type=float, default=2000, help="text lines per second")
    # The demo draws the screen itself: no log lines in between.
    demo.set_defaults(func=_demo, own_logging=True)


def _demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(seconds=args.seconds, rate=args.rate)
