"""`topicflow demo`: the example system on the embedded broker, live in the terminal.

One process, nothing but Python. Two generator threads produce sentences to
`textlines` and web log lines (with a few attackers) to `loglines`; the three
services run as KafkaStreams applications on the embedded broker, exactly as
they run on Kafka: the Text Processor writes `words`, the Aggregator counts
them per 10-second window into a SQLite table, the Anomaly Detector writes
its alerts and emails to `anomalies`. Once a second the screen shows the
rates, the top words of the latest complete window (read from the table) and
the latest notifications (read from the topic). Ctrl-C stops it all cleanly.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from topicflow.brokers.base import TopicSpec
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.runtime.kafka_streams import KafkaStreams, State

PARTITIONS = 4
REFRESH_S = 1.0
TOPICS = ("textlines", "words", "loglines", "anomalies")
# The Anomaly Detector's users table (services/users.py), written once at start.
USERS_TOPIC = "users"


class _Generator(threading.Thread):
    """Runs `produce(producer, keep_going)` on its own thread until told to stop."""

    def __init__(self, name: str, broker: EmbeddedBroker, produce: Callable[..., Any]) -> None:
        super().__init__(name=name, daemon=True)
        self._producer = broker.producer({})
        self._produce = produce
        self.stop = threading.Event()

    def keep_going(self, _item: object) -> bool:
        return not self.stop.is_set()

    def run(self) -> None:
        self._produce(self._producer, self.keep_going)


def _text_generator(rate: float) -> Callable[..., Any]:
    def produce(producer: Any, keep_going: Callable[[object], bool]) -> None:
        from services.generate_text import produce_lines
        from services.sentences import sentences

        lines = itertools.takewhile(keep_going, sentences(seed=1))
        produce_lines(producer, "textlines", lines, rate, 0, progress=False)

    return produce


def _log_generator() -> Callable[..., Any]:
    def produce(producer: Any, keep_going: Callable[[object], bool]) -> None:
        from services.generate_logs import log_lines, produce_log_lines

        now = int(time.time() * 1000)
        lines = itertools.takewhile(keep_going, log_lines(seed=1, start_ms=now))
        produce_log_lines(producer, "loglines", lines, now, 0, progress=False)

    return produce


def _write_profiles(broker: EmbeddedBroker) -> None:
    """The log generator's users' profiles, so that the detector's notifications name
    each user's email address and team."""
    from services.users import sample_profiles

    producer = broker.producer({})
    for user, profile in sample_profiles().items():
        producer.produce(USERS_TOPIC, profile.to_json().encode(), user.encode())
    producer.flush(10)


class _Anomalies:
    """Reads the audit topic in its own consumer group, as any other service could."""

    def __init__(self, broker: EmbeddedBroker) -> None:
        self._consumer = broker.consumer(
            {"group.id": "topicflow-demo-viewer", "auto.offset.reset": "earliest"}
        )
        self._consumer.subscribe(["anomalies"])
        self.latest: collections.deque[dict[str, Any]] = collections.deque(maxlen=8)
        self.counts: collections.Counter[str] = collections.Counter()

    def read(self) -> None:
        for message in self._consumer.consume(1000, 0.01):
            value = message.value()
            if value is None:
                continue
            notification = json.loads(value)
            self.latest.appendleft(notification)
            self.counts[notification.get("severity", "?")] += 1

    def close(self) -> None:
        self._consumer.close()


def _top_words(database: Path) -> tuple[int | None, list[tuple[str, int]]]:
    """The latest window that has ended, and its ten most frequent words."""
    ended_before = int(time.time() * 1000) - 10_000
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=0.2)) as connection:
            row = connection.execute(
                "SELECT max(time_window) FROM windowed_counts WHERE time_window <= ?",
                (ended_before,),
            ).fetchone()
            if row is None or row[0] is None:
                return None, []
            words = connection.execute(
                "SELECT word, count FROM windowed_counts WHERE time_window = ? "
                "ORDER BY count DESC, word LIMIT 10",
                (row[0],),
            ).fetchall()
            return int(row[0]), [(str(w), int(c)) for w, c in words]
    except sqlite3.Error:
        return None, []  # table not created yet, or busy: next refresh


def run_demo(seconds: float = 0, rate: float = 2000) -> int:
    from services import aggregator, anomaly_detector, text_processor
    from services.notifications.delivery import LogAlerts, LogEmails
    from services.notifications.processors import AlertSink, EmailSink
    from services.windowed_counts import sqlite_sink

    live = sys.stdout.isatty()
    # Services log to stderr; on a live screen only their warnings belong there.
    logging.basicConfig(level=logging.WARNING if live else logging.INFO)
    workdir = Path(tempfile.mkdtemp(prefix="topicflow-demo-"))
    database = workdir / "windowed_counts.sqlite3"
    # Retention bounds memory for a demo left running for hours: about 200k
    # records per partition (Kafka retains by time and size the same way).
    broker = EmbeddedBroker(default_partitions=PARTITIONS, retention_records=200_000)
    broker.create_topics([TopicSpec(topic, PARTITIONS) for topic in TOPICS])
    broker.create_topics([TopicSpec(USERS_TOPIC, PARTITIONS, config={"cleanup.policy": "compact"})])
    _write_profiles(broker)

    # An empty environment: the demo runs on the embedded broker whatever KAFKA_URL says.
    def streams_of(service: Any, topology: Any) -> KafkaStreams:
        config = service.config(environ={}, state_dir=str(workdir / "state"))
        return KafkaStreams(topology, config, broker=broker)

    applications = {
        "Text Processor": streams_of(text_processor.SERVICE, text_processor.build_topology()),
        "Aggregator": streams_of(
            aggregator.SERVICE, aggregator.build_topology(sink=sqlite_sink(database))
        ),
        "Anomaly Detector": streams_of(
            anomaly_detector.SERVICE,
            anomaly_detector.build_topology(
                alerts=AlertSink(LogAlerts(), 100), emails=EmailSink(LogEmails(None), 50)
            ),
        ),
    }
    generators = [
        _Generator("text-generator", broker, _text_generator(rate)),
        _Generator("log-generator", broker, _log_generator()),
    ]
    anomalies = _Anomalies(broker)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    failed = False
    try:
        for streams in applications.values():
            streams.start()
        for generator in generators:
            generator.start()
        last = (time.monotonic(), _totals(broker))
        while not stop.wait(REFRESH_S):
            anomalies.read()
            now, totals = time.monotonic(), _totals(broker)
            rates = {t: (totals[t] - last[1][t]) / (now - last[0]) for t in totals}
            last = (now, totals)
            _show(live, applications, totals, rates, _top_words(database), anomalies)
            if any(s.state is State.ERROR for s in applications.values()):
                failed = True
                break
            if seconds and now - started >= seconds:
                break
    finally:
        for generator in generators:
            generator.stop.set()
        for generator in generators:
            generator.join(5)
        closed = all([streams.close(15) for streams in applications.values()])
        anomalies.read()
        anomalies.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    totals = _totals(broker)
    print(
        f"demo stopped: {totals['textlines']:,} lines -> {totals['words']:,} words; "
        f"{totals['loglines']:,} log lines -> {anomalies.counts['urgent']} alerts, "
        f"{anomalies.counts['email']} emails; counts in {database}"
    )
    for name, streams in applications.items():
        if streams.error is not None:
            print(f"topicflow demo: the {name} failed: {streams.error}", file=sys.stderr)
    return 1 if failed or not closed else 0


def _totals(broker: EmbeddedBroker) -> dict[str, int]:
    return {topic: sum(broker.end_offsets(topic)) for topic in TOPICS}


def _show(
    live: bool,
    applications: dict[str, KafkaStreams],
    totals: dict[str, int],
    rates: dict[str, float],
    top: tuple[int | None, list[tuple[str, int]]],
    anomalies: _Anomalies,
) -> None:
    if not live:
        print(
            f"lines {rates['textlines']:,.0f}/s, words {rates['words']:,.0f}/s, "
            f"log lines {rates['loglines']:,.0f}/s, alerts {anomalies.counts['urgent']}, "
            f"emails {anomalies.counts['email']}",
            flush=True,
        )
        return
    states = "  ".join(f"{name}: {s.state.value}" for name, s in applications.items())
    window, words = top
    window_text = "waiting for the first complete window"
    if window is not None:
        window_text = f"window {_clock(window)}-{_clock(window + 10_000)}"
    lines = [
        "topicflow demo: the example system on the embedded broker (Ctrl-C stops)",
        f"  {states}",
        "",
        f"  text lines in {rates['textlines']:>9,.0f}/s   words out {rates['words']:>10,.0f}/s"
        f"   log lines in {rates['loglines']:>7,.0f}/s",
        f"  totals        {totals['textlines']:>11,}             {totals['words']:>12,}"
        f"                {totals['loglines']:>9,}",
        "",
        f"  Top words, {window_text}:",
        "    " + "  ".join(f"{word} {count:,}" for word, count in words),
        "",
        f"  Anomalies: {anomalies.counts['urgent']} alerts, {anomalies.counts['email']} emails"
        " (latest first)",
    ]
    for n in anomalies.latest:
        severity = "ALERT" if n.get("severity") == "urgent" else "email"
        # Who hears of it, from the users table: the team paged, the address emailed.
        to = n.get("team", "") if severity == "ALERT" else n.get("email", "")
        lines.append(
            f"    {severity:<5} {n.get('user_id', '?'):<12} {n.get('count', '?'):>4} failed logins"
            f" in {_clock(int(n.get('window_start', 0)))}-{_clock(int(n.get('window_end', 0)))}"
            + (f" -> {to}" if to else "")
        )
    # Redraw in place: home the cursor, clear to the end of the screen.
    sys.stdout.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
    sys.stdout.flush()


def _clock(epoch_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch_ms / 1000))
