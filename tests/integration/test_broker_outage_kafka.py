"""The three services through a Kafka broker outage: they wait, log little, and lose nothing.

Issue 11. The shared dev broker is stopped and started again (the finalizer
always restarts it). While it is away each service keeps retrying, its commit
postponed and input paused, without exiting, for up to task_timeout_ms, and
librdkafka's connection errors are held to about one line per 30 s per process.
Afterwards the table and the failed-login counts equal ground truth computed
here from the input. With a task_timeout_ms shorter than the outage, the Text
Processor stops, in one line naming task_timeout_ms, and a restart loses none
of the words it had not committed.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

import topicflow_dev
from services.logs import format_log_line
from services.sentences import sentences
from tests.integration.kafka_tools import (
    ServiceProcess,
    alerted,
    create_topics,
    dead_letter_topics,
    emailed,
    end_offsets,
    produce,
    read_records,
    table,
    wait_until,
    window_of,
    windowed_counts_of_changelog,
)
from tests.local_servers import LocalHttpServer, LocalSmtpServer
from topicflow_dev import DevEnv

PARTITIONS = 4
OUTAGE_S = 90
URGENT, EMAIL = 20, 10
# Lines of a service's log about the broker being away: librdkafka's own
# (logger topicflow.librdkafka) and any other naming a lost connection.
CONNECTION_ERROR = re.compile(
    r" topicflow\.librdkafka: |Connection refused|Kafka unreachable|Disconnected"
)


@pytest.fixture
def kafka_restarted() -> Iterator[None]:
    yield
    # Whatever happened, leave it running for the others.
    topicflow_dev.thaw_kafka()
    topicflow_dev.start_kafka()


def words_in(line: str) -> list[str]:
    # The generated sentences hold Latin letters with precomposed accents only,
    # where Python's \w and the Text Processor's word characters agree.
    return re.findall(r"\w+", line.lower())


def timed_lines(count: int, seed: int, start_ms: int, span_ms: int) -> list[tuple[int, str]]:
    lines = itertools.islice(sentences(seed), count)
    return [(start_ms + i * span_ms // count, line) for i, line in enumerate(lines)]


def word_truth(lines: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    truth: collections.Counter[tuple[int, str]] = collections.Counter()
    for timestamp, line in lines:
        for word in words_in(line):
            truth[(window_of(timestamp), word)] += 1
    return dict(truth)


def login_lines(plan: list[tuple[str, int, int]]) -> list[tuple[int, str]]:
    """(user, window start, failed logins) -> timed log lines, one succeeded login per user too."""
    lines = []
    for user, window, failed in plan:
        for i in range(failed + 1):
            timestamp = window + i * 9_000 // (failed + 1)
            action = "login failed" if i < failed else "login succeeded"
            lines.append((timestamp, format_log_line(user, timestamp, "192.0.2.9", action, "x")))
    return sorted(lines)


def connection_error_lines(process: ServiceProcess) -> list[str]:
    return [line for line in process.log().splitlines() if CONNECTION_ERROR.search(line)]


def produce_timed(bootstrap: str, topic: str, lines: list[tuple[int, str]]) -> None:
    produce(bootstrap, topic, [x.encode() for _, x in lines], timestamps=[t for t, _ in lines])


@pytest.mark.timeout(420)
def test_the_services_ride_out_a_broker_outage_and_lose_nothing(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path, kafka_restarted: None
) -> None:
    prefix = f"brokerdown-{unique}."
    bootstrap = dev_env.bootstrap_servers
    create_topics(
        bootstrap,
        [
            *(f"{prefix}{t}" for t in ("textlines", "words", "loglines", "anomalies", "users")),
            *dead_letter_topics(prefix),
        ],
        PARTITIONS,
    )
    webhook = LocalHttpServer().start()
    smtp = LocalSmtpServer().start()
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "ALERT_WEBHOOK_URL": webhook.url(),
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "EMAIL_FROM": "detector@example.com",
        "EMAIL_TO": "security@example.com",
        "ANOMALY_URGENT_THRESHOLD": str(URGENT),
        "ANOMALY_EMAIL_THRESHOLD": str(EMAIL),
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_METRICS_LOG_INTERVAL_S": "5",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    changelog = f"{prefix}anomaly-detector-app-failed-logins-changelog"
    start = window_of(int(time.time() * 1000)) - 60_000
    w1, w2, w3 = start, start + 10_000, start + 20_000
    # Before the outage; the last of it produced just before the broker stops,
    # so that the services have records in flight when it goes.
    text_before = timed_lines(2_000, seed=31, start_ms=start, span_ms=30_000)
    text_last = timed_lines(500, seed=32, start_ms=start + 20_000, span_ms=10_000)
    logs_before = login_lines([("alice", w1, 25), ("bob", w1, 15), ("carol", w1, 3)])
    logs_last = login_lines([("erin", w2, 30), ("frank", w2, 12)])
    # After it, into old and new windows.
    text_after = timed_lines(1_500, seed=33, start_ms=start + 10_000, span_ms=40_000)
    logs_after = login_lines([("alice", w3, 21), ("dave", w3, 11), ("bob", w2, 9)])

    def login_truth(lines: list[tuple[int, str]]) -> dict[tuple[str, int], int]:
        truth: collections.Counter[tuple[str, int]] = collections.Counter()
        for timestamp, line in lines:
            if "login failed" in line:
                truth[(line.split(" | ")[0].removeprefix("user_id: "), window_of(timestamp))] += 1
        return dict(truth)

    processes: list[ServiceProcess] = []
    try:
        for command in ("text-processor", "aggregator", "anomaly-detector"):
            processes.append(ServiceProcess(command, env, tmp_path, command))
        produce_timed(bootstrap, f"{prefix}textlines", text_before)
        produce_timed(bootstrap, f"{prefix}loglines", logs_before)
        wait_until(
            lambda: table(database) == word_truth(text_before), 120, "the first words", processes
        )
        wait_until(
            lambda: windowed_counts_of_changelog(bootstrap, changelog) == login_truth(logs_before),
            60,
            "the first failed logins",
            processes,
        )
        wait_until(lambda: ("alice", w1) in alerted(webhook), 30, "the first alert", processes)

        produce_timed(bootstrap, f"{prefix}textlines", text_last)
        produce_timed(bootstrap, f"{prefix}loglines", logs_last)
        stopping = time.monotonic()
        assert topicflow_dev.stop_kafka()
        stopped = time.monotonic()
        while time.monotonic() - stopping < OUTAGE_S:
            for process in processes:
                assert process.process.poll() is None, process.log()
            time.sleep(1)
        assert topicflow_dev.start_kafka()
        back = time.monotonic()

        produce_timed(bootstrap, f"{prefix}textlines", text_after)
        produce_timed(bootstrap, f"{prefix}loglines", logs_after)
        truth = word_truth(text_before + text_last + text_after)
        wait_until(
            lambda: table(database) == truth,
            120,
            "windowed_counts after the outage",
            processes,
            lambda: _difference(table(database), truth),
        )
        logins = login_truth(logs_before + logs_last + logs_after)
        wait_until(
            lambda: windowed_counts_of_changelog(bootstrap, changelog) == logins,
            60,
            "failed-login counts after the outage",
            processes,
            lambda: str(windowed_counts_of_changelog(bootstrap, changelog)),
        )
        urgent = {key for key, count in logins.items() if count > URGENT}
        email_only = {key for key, count in logins.items() if EMAIL < count <= URGENT}
        assert urgent == {("alice", w1), ("erin", w2), ("alice", w3)}
        assert email_only == {("bob", w1), ("frank", w2), ("dave", w3)}
        wait_until(lambda: set(alerted(webhook)) >= urgent, 60, "the alerts", processes)
        wait_until(lambda: set(emailed(smtp)) >= email_only, 60, "the emails", processes)
        recovered = time.monotonic()
        time.sleep(3)  # any repeat would arrive within a few commits
        assert sorted(alerted(webhook)) == sorted(urgent), "one alert per attacked window"
        assert set(emailed(smtp)) <= email_only | urgent, emailed(smtp)
        assert len(emailed(smtp)) == len(set(emailed(smtp))), emailed(smtp)

        for process in processes:
            assert process.process.poll() is None, process.log()
        noise = {p.log_path.stem: connection_error_lines(p) for p in processes}
        postponed = {p.log_path.stem: p.log().count("commit postponed") for p in processes}
        for process in processes:
            process.terminate()
        for process in processes:
            assert process.wait(30) == 0, process.log()
        for name, lines in noise.items():
            assert len(lines) < 20, f"{name}: {len(lines)} connection error lines:\n" + "\n".join(
                lines
            )
        print(
            f"\nbroker stop took {stopped - stopping:.0f} s, outage {back - stopping:.0f} s, "
            f"recovered {recovered - back:.0f} s after; {len(truth)} rows exact, "
            f"{len(logins)} failed-login counts exact, alerts {len(alerted(webhook))}, "
            f"emails {len(emailed(smtp))}; connection error lines "
            f"{ {k: len(v) for k, v in noise.items()} }, commit postponed lines {postponed}"
        )
        for name, lines in noise.items():
            print(f"--- {name}\n" + "\n".join(line[:300] for line in lines))
    finally:
        for process in processes:
            process.stop()
        webhook.stop()
        smtp.stop()


def _difference(found: dict[tuple[int, str], int], truth: dict[tuple[int, str], int]) -> str:
    wrong = sorted(k for k in truth.keys() | found.keys() if found.get(k) != truth.get(k))
    shown = ", ".join(f"{k}: {found.get(k)} (truth {truth.get(k)})" for k in wrong[:8])
    return f"{sum(found.values())} counted for {sum(truth.values())}; {len(wrong)} differ: {shown}"


class SteadyProducer:
    """Produces generated text lines in a thread until stopped; keeps the acknowledged ones."""

    def __init__(self, bootstrap: str, topic: str, rate: float) -> None:
        self.acknowledged: list[bytes] = []
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "linger.ms": 5,
                "message.timeout.ms": 5_000,
                "log_level": 0,  # its own connection errors are not the test's subject
            }
        )
        self._topic, self._rate = topic, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _delivered(self, error: Any, message: Any) -> None:
        if error is None:
            self.acknowledged.append(message.value())

    def _run(self) -> None:
        started = time.monotonic()
        for sent, line in enumerate(sentences(41), 1):
            if self._stop.is_set():
                return
            # A full queue (the broker stopping) drops the line: only acknowledged ones count.
            with contextlib.suppress(BufferError):
                self._producer.produce(self._topic, line.encode(), on_delivery=self._delivered)
            self._producer.poll(0)
            ahead = sent / self._rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._producer.flush(15)


@pytest.mark.timeout(300)
def test_past_task_timeout_the_text_processor_stops_and_a_restart_loses_nothing(
    dev_env: DevEnv, unique: str, tmp_path: Path, kafka_restarted: None
) -> None:
    prefix = f"tasktimeout-{unique}."
    bootstrap = dev_env.bootstrap_servers
    textlines, words = f"{prefix}textlines", f"{prefix}words"
    create_topics(bootstrap, [textlines, words, *dead_letter_topics(prefix)], PARTITIONS)
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_TASK_TIMEOUT_MS": "15000",
        "TOPICFLOW_METRICS_LOG_INTERVAL_S": "5",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    first: ServiceProcess | None = None
    restarted: ServiceProcess | None = None
    producer: SteadyProducer | None = None
    try:
        # A backlog the Text Processor is still working through when the broker
        # goes, so that it has words in flight, unacknowledged, at that moment
        # (with nothing to send, nothing times out, in Kafka Streams too). The
        # broker is frozen rather than stopped: a stopping broker answers the
        # requests in flight first.
        producer = SteadyProducer(bootstrap, textlines, rate=50_000)
        wait_until(lambda: len(producer.acknowledged) >= 60_000, 60, "the backlog", [])
        producer.stop()
        first = ServiceProcess("text-processor", env, tmp_path, "text-processor")
        first.wait_for_log(r"state REBALANCING -> RUNNING", 30)
        wait_until(
            lambda: sum(end_offsets(bootstrap, words)) >= 20_000, 30, "words flowing", [first]
        )
        stopping = time.monotonic()
        assert topicflow_dev.freeze_kafka()
        try:
            code = first.wait(40 - (time.monotonic() - stopping))  # within the 40 s outage
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running 40 s into the outage:\n{first.log()}") from None
        stopped_after = time.monotonic() - stopping
        assert code != 0, first.log()
        stderr_last = first.log().splitlines()[-1]
        time.sleep(max(0.0, 40 - (time.monotonic() - stopping)))
        assert topicflow_dev.thaw_kafka()

        lines = [m.value() for m in read_records(bootstrap, textlines)]
        assert set(producer.acknowledged) <= set(lines), "the broker lost acknowledged input"
        truth = collections.Counter(w for line in lines for w in words_in(line.decode()))
        restarted = ServiceProcess("text-processor", env, tmp_path, "text-processor-restarted")

        def found() -> collections.Counter[str]:
            return collections.Counter(m.value().decode() for m in read_records(bootstrap, words))

        wait_until(
            lambda: not truth - found(),
            90,
            "every word at least once",
            [restarted],
            lambda: f"{sum((truth - found()).values())} words missing",
        )
        words_found = found()
        assert set(words_found) == set(truth), set(words_found) ^ set(truth)
        restarted.terminate()
        assert restarted.wait(30) == 0, restarted.log()
        repeated = sum((words_found - truth).values())
        print(
            f"\nexit {code} {stopped_after:.0f} s after the broker stopped; "
            f"{len(lines)} lines ({len(producer.acknowledged)} acknowledged to the test), "
            f"{sum(truth.values())} words, {repeated} repeated after the restart; "
            f"{len(connection_error_lines(first))} connection error lines; last line:\n"
            f"{stderr_last}"
        )
        # Why it stopped, in its last line: the broker away past task_timeout_ms.
        assert stderr_last.startswith("text-processor: stopped after an error: "), stderr_last
        assert "task_timeout_ms" in stderr_last, stderr_last
    finally:
        if producer is not None:
            producer.stop()
        for process in (first, restarted):
            if process is not None:
                process.stop()
