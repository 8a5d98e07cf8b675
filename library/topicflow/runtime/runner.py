"""Run a KafkaStreams application as a process: logging, signals, exit codes.

Heroku stops a dyno with SIGTERM and kills it 30 s later: on SIGTERM or
SIGINT the application finishes its batch, flushes, commits and leaves the
group within `shutdown_timeout_s`. Errors end the process with one line on
stderr and a non-zero exit, never a traceback for a known failure.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from topicflow.errors import TopicflowError
from topicflow.runtime.kafka_streams import KafkaStreams, State
from topicflow.runtime.processing import DROPPED_RECORDS, dropped_records_summary

log = logging.getLogger(__name__)

# Heroku gives 30 s between SIGTERM and SIGKILL; leave margin for the exit itself.
SHUTDOWN_TIMEOUT_S = 25.0

# A summary of the metrics (records in and out, dropped records by cause) every
# this many seconds; TOPICFLOW_METRICS_LOG_INTERVAL_S changes it, 0 turns it off.
METRICS_LOG_INTERVAL_S = 60.0

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETUP = 2


def configure_logging() -> None:
    """Log lines on stderr, as Heroku's log router collects them; LOG_LEVEL sets the level."""
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        # The process id tells stream worker processes apart in one log stream.
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_until_signal(
    name: str,
    make_streams: Callable[[], KafkaStreams],
    shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    describe: bool = True,
) -> int:
    """Build, start and run a KafkaStreams until SIGTERM/SIGINT or a fatal error.

    Returns the process exit code: 0 after a clean shutdown, 1 if processing
    failed, 2 if the application could not start (configuration, broker, topics).
    """
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.info("%s: received %s, already shutting down", name, signal.Signals(signum).name)
            return
        log.info("%s: received %s, shutting down", name, signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            streams = make_streams()
            if describe:
                log.info("%s topology:\n%s", name, streams.topology.describe())
            streams.set_state_listener(lambda new, _old: stop.set() if new is State.ERROR else None)
            streams.start()
        except TopicflowError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return EXIT_BAD_SETUP
        interval = _metrics_interval()
        next_summary = time.monotonic() + interval
        while not stop.wait(0.5):
            if interval and time.monotonic() >= next_summary:
                next_summary += interval
                log.info("%s: %s", name, metrics_summary(streams.metrics()))
        # Our handler stays installed while closing: a second SIGTERM (Heroku
        # sends one per process in the dyno) must not cut the shutdown short.
        clean = streams.close(shutdown_timeout_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if streams.error is not None:
        log.info("%s: %s", name, metrics_summary(streams.metrics()))
        print(f"{name}: stopped after an error: {streams.error}", file=sys.stderr)
        return EXIT_FAILED
    if not clean:
        print(f"{name}: did not shut down within {shutdown_timeout_s:.0f} s", file=sys.stderr)
        return EXIT_FAILED
    log.info("%s: stopped cleanly; %s", name, metrics_summary(streams.metrics()))
    return EXIT_OK


def metrics_summary(metrics: dict[str, int]) -> str:
    """One line: records consumed and produced, dropped records by cause, then the rest."""
    shown = ("records_consumed", "records_produced", "commits")
    head = ", ".join(f"{name}={metrics.get(name, 0)}" for name in shown)
    rest = ", ".join(
        f"{name}={value}"
        for name, value in metrics.items()
        if name not in shown and name not in DROPPED_RECORDS and name != "dead_lettered"
    )
    return f"{head}, {dropped_records_summary(metrics)}; {rest}"


def _metrics_interval() -> float:
    raw = os.environ.get("TOPICFLOW_METRICS_LOG_INTERVAL_S", "").strip()
    try:
        return max(0.0, float(raw)) if raw else METRICS_LOG_INTERVAL_S
    except ValueError:
        return METRICS_LOG_INTERVAL_S
