"""Poison pills on the real broker and database: skipped, counted, dead-lettered, or fatal.

Issue 11. The services run with every exception handler set to
log_and_continue and a dead-letter topic each (services/service.py):

- a word too long for PostgreSQL's unique index (3,000 and 20,000 characters)
  is counted, but its row is refused: every other row is written, the refused
  one dead-lettered by the Aggregator (a sink error);
- a ~900 KB word passes the Text Processor, but the Aggregator's repartition
  record (key and value: the word) is over the producer's 1 MB: the production
  handler skips it, and its `words` record is dead-lettered;
- log lines not in the format are dead-lettered by the Anomaly Detector, byte
  for byte, and never counted as failed logins;
- with production_exception_handler=log_and_fail the Aggregator stops at the
  pill, naming it, and commits nothing after it;
- a service whose dead-letter topic does not exist refuses to start.

Every result is compared with ground truth computed here from the input.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import re
import string
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from services.sentences import sentences
from tests.integration.kafka_tools import (
    BIN,
    ServiceProcess,
    alerted,
    create_topics,
    dead_letter_topics,
    emailed,
    end_offsets,
    headers_of,
    produce,
    produce_recorded,
    read_records,
    record_at,
    table,
    wait_until,
    window_of,
    windowed_counts_of_changelog,
)
from tests.local_servers import LocalHttpServer, LocalSmtpServer
from topicflow_dev import DevEnv

PARTITIONS = 4
DLQ_HEADERS = (
    "__streams.errors.exception",
    "__streams.errors.message",
    "__streams.errors.stacktrace",
    "__streams.errors.topic",
    "__streams.errors.partition",
    "__streams.errors.offset",
)
VALUE_DROPPED = "topicflow.errors.value.dropped"
# Under librdkafka's message.max.bytes (1,000,000) as a textlines or words
# record; twice over it as the Aggregator's repartition record (key and value).
HUGE_WORD_CHARS = 900_000


def service_env(dev_env: DevEnv, prefix: str, database: str, tmp_path: Path) -> dict[str, str]:
    return {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_METRICS_LOG_INTERVAL_S": "2",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }


def words_in(line: str) -> list[str]:
    # The generated sentences hold Latin letters with precomposed accents only,
    # where Python's \w and the Text Processor's word characters agree.
    return re.findall(r"\w+", line.lower())


def incompressible(length: int, seed: int) -> str:
    """Random letters: PostgreSQL cannot compress them below its index row limit."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(length))


def metrics_of(line: str) -> dict[str, int]:
    """The figures of a metrics summary line: `name=N` pairs."""
    return {name: int(n) for name, n in re.findall(r"([a-z_-]+)=(\d+)", line)}


def stopped_cleanly(process: ServiceProcess) -> dict[str, int]:
    lines = [line for line in process.log().splitlines() if "stopped cleanly;" in line]
    assert len(lines) == 1, process.log()
    return metrics_of(lines[0].split("stopped cleanly;", 1)[1])


def assert_dead_letter_headers(message: Any) -> dict[str, str]:
    headers = headers_of(message)
    assert set(DLQ_HEADERS) <= set(headers), headers.keys()
    for name in ("__streams.errors.exception", "__streams.errors.message"):
        assert headers[name], f"{name} is empty"
    assert "Traceback" in headers["__streams.errors.stacktrace"], headers
    return headers


# -- 1a: Text Processor and Aggregator ----------------------------------------------------------


def test_long_words_are_dead_lettered_and_every_other_count_is_exact(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"pills-{unique}."
    bootstrap = dev_env.bootstrap_servers
    textlines, words = f"{prefix}textlines", f"{prefix}words"
    create_topics(bootstrap, [textlines, words, *dead_letter_topics(prefix)], PARTITIONS)
    env = service_env(dev_env, prefix, database, tmp_path)

    long_word = incompressible(3_000, seed=1)  # its index row: over PostgreSQL's 2,704 bytes
    longer_word = incompressible(20_000, seed=2)
    huge_word = incompressible(HUGE_WORD_CHARS, seed=3)
    texts = list(itertools.islice(sentences(21), 1_200))
    texts[300] = f"a {long_word} in a line"
    texts[600] = f"another {longer_word} here"
    texts[900] = huge_word  # a line that is one word
    start = window_of(int(time.time() * 1000)) - 50_000
    lines = [(start + i * 40_000 // len(texts), text) for i, text in enumerate(texts)]
    pill_time = {word: lines[i][0] for i, word in ((300, long_word), (600, longer_word))}
    huge_time = lines[900][0]

    truth: collections.Counter[tuple[int, str]] = collections.Counter()
    for timestamp, text in lines:
        for word in words_in(text):
            if word not in (long_word, longer_word, huge_word):
                truth[(window_of(timestamp), word)] += 1

    processes: list[ServiceProcess] = []
    try:
        for command in ("text-processor", "aggregator"):
            processes.append(ServiceProcess(command, env, tmp_path, command))
        text_processor, aggregator = processes
        began = time.monotonic()
        produce(
            bootstrap,
            textlines,
            [text.encode() for _, text in lines],
            rate=100,  # 12 s of steady input, the services running
            timestamps=[t for t, _ in lines],
        )
        wait_until(
            lambda: table(database) == dict(truth),
            120,
            "windowed_counts",
            processes,
            lambda: _difference(table(database), truth),
        )
        dlq = f"{prefix}aggregator-dlq"
        wait_until(
            lambda: sum(end_offsets(bootstrap, dlq)) >= 3, 60, "three dead letters", processes
        )
        time.sleep(3)  # several commits more: nothing else may arrive
        assert all(p.process.poll() is None for p in processes), [p.log() for p in processes]
        assert table(database) == dict(truth), _difference(table(database), truth)
        assert sum(end_offsets(bootstrap, f"{prefix}text-processor-dlq")) == 0

        letters = read_records(bootstrap, dlq)
        assert len(letters) == 3, [(m.key() or b"")[:40] for m in letters]
        refused = {m.key(): m for m in letters if m.key() is not None}
        assert set(refused) == {long_word.encode(), longer_word.encode()}, refused.keys()
        for word, message in ((w, refused[w.encode()]) for w in (long_word, longer_word)):
            row = {"time_window": window_of(pill_time[word]), "word": word, "count": 1}
            assert message.value() == json.dumps(row, separators=(",", ":")).encode()
            # Stamped with the window's start: the row has no one source record.
            assert message.timestamp()[1] == row["time_window"]
            headers = assert_dead_letter_headers(message)
            # A row the database refused has no source record.
            assert (
                headers["__streams.errors.topic"],
                headers["__streams.errors.partition"],
                headers["__streams.errors.offset"],
            ) == ("", "-1", "-1"), headers
            assert "index row" in headers["__streams.errors.message"], headers

        [production] = [m for m in letters if m.key() is None]
        headers = assert_dead_letter_headers(production)
        assert headers["__streams.errors.topic"] == words
        assert "KafkaException" in headers["__streams.errors.exception"], headers
        source = record_at(
            bootstrap,
            words,
            int(headers["__streams.errors.partition"]),
            int(headers["__streams.errors.offset"]),
        )
        assert source.key() is None and source.value() == huge_word.encode()
        if production.value() is None:
            assert headers[VALUE_DROPPED] == str(HUGE_WORD_CHARS), headers
        else:
            assert production.value() == huge_word.encode()
            assert VALUE_DROPPED not in headers
        assert production.timestamp()[1] == huge_time == source.timestamp()[1]

        # The periodic summary (every 2 s) shows the skips by cause.
        aggregator.wait_for_log(
            r"aggregator: records_consumed=.*production_errors=1, sink_errors=2.*dead-lettered=3",
            10,
        )
        elapsed = time.monotonic() - began
        for process in processes:
            process.terminate()
        for process in processes:
            assert process.wait(30) == 0, process.log()
        counted = stopped_cleanly(aggregator)
        assert counted["production_errors"] == 1 and counted["sink_errors"] == 2, counted
        assert counted["dead-lettered"] == 3 and counted["dropped-records"] == 3, counted
        assert stopped_cleanly(text_processor)["dropped-records"] == 0, text_processor.log()
        print(
            f"\n1a: {len(truth)} rows exact, 3 dead letters "
            f"(value of the production one {'dropped' if production.value() is None else 'kept'}"
            f"), {elapsed:.0f} s; aggregator {counted}"
        )
    finally:
        for process in processes:
            process.stop()


def _difference(found: dict[tuple[int, str], int], truth: collections.Counter[Any]) -> str:
    wrong = sorted(k for k in truth.keys() | found.keys() if found.get(k) != truth.get(k))
    shown = ", ".join(f"{(k[0], k[1][:20])}: {found.get(k)} (truth {truth.get(k)})" for k in wrong)
    return f"{len(found)} rows for {len(truth)}; {len(wrong)} differ: {shown[:600]}"


# -- 1b: Anomaly Detector -----------------------------------------------------------------------

URGENT, EMAIL = 10, 5


def log_line(user: str, timestamp_ms: int, action: str, ip: str = "192.0.2.1") -> str:
    moment = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(timestamp_ms // 1000))
    return (
        f"user_id: {user} | timestamp: {moment} | ip_address: {ip} | "
        f"action: {action} | message: attempt at {timestamp_ms}"
    )


def malformed_lines(user: str, timestamp_ms: int) -> list[str]:
    """Failed logins of `user`, each wrong in one way."""
    good = log_line(user, timestamp_ms, "login failed")
    moment = good.split(" | ")[1]
    return [
        good.replace(moment, f"timestamp: {timestamp_ms}"),  # epoch milliseconds
        good.replace(moment, f"timestamp: {timestamp_ms // 1000}"),  # epoch seconds
        good.replace("192.0.2.1", "999.1.1.1"),
        good.replace(" | ip_address: 192.0.2.1", ""),  # a field missing
        good.replace(" | timestamp", " || timestamp"),  # an extra separator
        f"{moment} | user_id: {user} | " + good.split(" | ", 2)[2],  # fields out of order
        "",  # an empty line
    ]


def test_malformed_log_lines_are_dead_lettered_byte_for_byte_and_never_counted(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"logs-{unique}."
    bootstrap = dev_env.bootstrap_servers
    loglines = f"{prefix}loglines"
    create_topics(
        bootstrap,
        [loglines, f"{prefix}anomalies", f"{prefix}users", *dead_letter_topics(prefix)],
        PARTITIONS,
    )
    webhook = LocalHttpServer().start()
    smtp = LocalSmtpServer().start()
    env = {
        **service_env(dev_env, prefix, database, tmp_path),
        "ALERT_WEBHOOK_URL": webhook.url(),
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "EMAIL_FROM": "detector@example.com",
        "EMAIL_TO": "security@example.com",
        "ANOMALY_URGENT_THRESHOLD": str(URGENT),
        "ANOMALY_EMAIL_THRESHOLD": str(EMAIL),
    }
    first = window_of(int(time.time() * 1000)) - 40_000
    second = first + 10_000
    # (user, window, failed logins, succeeded logins) of the good lines.
    plan = [
        ("alice", first, 12, 0),  # urgent
        ("bob", first, 7, 0),  # email only
        ("carol", first, EMAIL, 10),  # at the email threshold: nothing
        # At the urgent threshold: an email only. The malformed lines are failed
        # logins of hers too: counted, they would page.
        ("mallory", second, URGENT, 4),
    ]
    rng = random.Random(7)
    good: list[tuple[int, str]] = []
    truth: dict[tuple[str, int], int] = {}
    for user, window, failed, succeeded in plan:
        truth[(user, window)] = failed
        actions = ["login failed"] * failed + ["login succeeded"] * succeeded
        for action in actions:
            timestamp = window + rng.randrange(10_000)
            good.append((timestamp, log_line(user, timestamp, action)))
    rng.shuffle(good)
    bad = [(second + 5_000 + i, line) for i, line in enumerate(malformed_lines("mallory", second))]
    lines = list(good)
    for i, entry in enumerate(bad):
        lines.insert((i + 1) * len(good) // (len(bad) + 1) + i, entry)
    urgent = {key for key, count in truth.items() if count > URGENT}
    email_only = {key for key, count in truth.items() if EMAIL < count <= URGENT}
    assert urgent == {("alice", first)} and email_only == {("bob", first), ("mallory", second)}

    detector = ServiceProcess("anomaly-detector", env, tmp_path, "anomaly-detector")
    try:
        placed = produce_recorded(
            bootstrap, loglines, [x.encode() for _, x in lines], [t for t, _ in lines]
        )
        malformed = set(bad)
        where = {x.encode(): placed[i] for i, (t, x) in enumerate(lines) if (t, x) in malformed}
        changelog = f"{prefix}anomaly-detector-app-failed-logins-changelog"
        wait_until(
            lambda: windowed_counts_of_changelog(bootstrap, changelog) == truth,
            60,
            "failed-login counts",
            [detector],
            lambda: str(windowed_counts_of_changelog(bootstrap, changelog)),
        )

        wait_until(lambda: set(alerted(webhook)) >= urgent, 60, "the alert", [detector])
        wait_until(lambda: set(emailed(smtp)) >= email_only, 60, "the emails", [detector])
        time.sleep(3)  # any repeat or extra would come within a few commits
        assert alerted(webhook) == [("alice", first)]
        assert set(emailed(smtp)) <= email_only | urgent, emailed(smtp)
        assert len(emailed(smtp)) == len(set(emailed(smtp))), emailed(smtp)

        letters = read_records(bootstrap, f"{prefix}anomaly-detector-dlq")
        values = collections.Counter(m.value() for m in letters)
        assert values == collections.Counter(where.keys()), values
        for message in letters:
            headers = assert_dead_letter_headers(message)
            assert headers["__streams.errors.exception"].startswith(
                "services.logs.MalformedLogLine: malformed log line"
            ), headers
            source = (
                headers["__streams.errors.topic"],
                int(headers["__streams.errors.partition"]),
                int(headers["__streams.errors.offset"]),
            )
            assert source == (loglines, *where[message.value() or b""]), (headers, message.value())
            assert message.key() is None
        times = {line.encode(): t for t, line in bad}
        assert all(m.timestamp()[1] == times[m.value() or b""] for m in letters)

        detector.wait_for_log(
            rf"anomaly-detector: records_consumed=.*"
            rf"\(processing_errors={len(bad)}\), dead-lettered={len(bad)}",
            10,
        )
        assert detector.process.poll() is None, detector.log()
        detector.terminate()
        assert detector.wait(30) == 0, detector.log()
        counted = stopped_cleanly(detector)
        assert counted["processing_errors"] == len(bad) == counted["dropped-records"], counted
        assert counted["dead-lettered"] == len(bad), counted
        # Every line read once, and every good failed login once more from the
        # repartition topic: no malformed line went further.
        assert counted["records_consumed"] == len(lines) + sum(truth.values()), counted
        print(
            f"\n1b: {len(lines)} lines, {len(bad)} malformed dead-lettered; counts {truth}; "
            f"alerts {alerted(webhook)}, emails {emailed(smtp)}; {counted}"
        )
    finally:
        detector.stop()
        webhook.stop()
        smtp.stop()


# -- 1c: log_and_fail ---------------------------------------------------------------------------


def committed_offset(bootstrap: str, group: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [tp] = consumer.committed([TopicPartition(topic, partition)], timeout=10)
        return int(tp.offset)
    finally:
        consumer.close()


def test_log_and_fail_stops_the_aggregator_at_the_pill_and_commits_nothing_after_it(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"fail-{unique}."
    bootstrap = dev_env.bootstrap_servers
    words = f"{prefix}words"
    create_topics(bootstrap, [words, *dead_letter_topics(prefix)], 2)
    env = {
        **service_env(dev_env, prefix, database, tmp_path),
        "TOPICFLOW_PRODUCTION_EXCEPTION_HANDLER": "log_and_fail",
    }
    vocabulary = ["kafka", "streams", "heroku", "python", "window", "count"]
    start = window_of(int(time.time() * 1000)) - 30_000
    before = [(start + i * 10, vocabulary[i % 6]) for i in range(400)]
    after = [(start + 5_000 + i * 10, vocabulary[i % 4]) for i in range(200)]
    truth: collections.Counter[tuple[int, str]] = collections.Counter(
        (window_of(t), w) for t, w in before
    )
    group = f"{prefix}aggregator-app"

    aggregator = ServiceProcess("aggregator", env, tmp_path, "aggregator")
    try:
        produce_recorded(bootstrap, words, [w.encode() for _, w in before], [t for t, _ in before])
        wait_until(lambda: table(database) == dict(truth), 60, "the first words", [aggregator])
        wait_until(
            lambda: sum(committed_offset(bootstrap, group, words, p) for p in (0, 1)) == 400,
            30,
            "the first words committed",
            [aggregator],
        )
        [(partition, offset)] = produce_recorded(
            bootstrap, words, [incompressible(HUGE_WORD_CHARS, 4).encode()], [start + 4_000]
        )
        produce_recorded(bootstrap, words, [w.encode() for _, w in after], [t for t, _ in after])
        code = aggregator.wait(60)
        assert code != 0, aggregator.log()
        pill = f"{words}[{partition}]@{offset}"
        naming = [
            line
            for line in aggregator.log().splitlines()
            if pill in line and "production_exception_handler" in line
        ]
        assert naming, aggregator.log()
        assert naming[-1].startswith("aggregator: stopped after an error: "), naming
        assert "Traceback" not in aggregator.log()
        # Every word before the pill was committed before it came; nothing after since.
        assert committed_offset(bootstrap, group, words, partition) == offset
        print(f"\n1c: exit {code}; {len(naming)} line(s) naming {pill}:\n" + "\n".join(naming))
    finally:
        aggregator.stop()


# -- 1d: no dead-letter topic -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "topics"),
    [
        ("text-processor", ("textlines", "words")),
        ("aggregator", ("words",)),
        ("anomaly-detector", ("loglines", "anomalies", "users")),
    ],
)
def test_a_service_without_its_dead_letter_topic_refuses_to_start(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path, service: str, topics: tuple[str]
) -> None:
    prefix = f"nodlq-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}{t}" for t in topics], 1)
    began = time.monotonic()
    result = subprocess.run(
        [str(BIN / service)],
        env={**os.environ, **service_env(dev_env, prefix, database, tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    took = time.monotonic() - began
    dlq = f"{prefix}{service}-dlq"
    naming = [line for line in result.stderr.splitlines() if dlq in line]
    assert result.returncode == 2, result.stderr
    # Within startup_timeout_ms (15 s), and the interpreter's start.
    assert took < 20, took
    assert len(naming) == 1 and "errors_dead_letter_queue_topic_name" in naming[0], result.stderr
    print(f"\n1d {service}: exit 2 in {took:.1f} s: {naming[0]}")
