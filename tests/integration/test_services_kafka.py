"""The example system as separate processes on real Kafka and PostgreSQL.

Text Processor -> Aggregator -> windowed_counts, and the Anomaly Detector ->
webhook and SMTP servers run by the test. Results are compared with ground
truth computed here from the generated input, by code independent of the
services'. Then the Aggregator is stopped, its local state deleted, more words
are produced into the same windows, and it is started again: it must rebuild
its counts from the changelog, or the table would go wrong.
"""

from __future__ import annotations

import collections
import itertools
import re
import shutil
import time
from pathlib import Path
from typing import Any

from services.generate_logs import log_lines
from services.sentences import sentences
from tests.integration.kafka_tools import (
    ServiceProcess,
    create_topics,
    dead_letter_topics,
    emailed,
    produce,
    table,
    wait_until,
    window_of,
)
from tests.local_servers import LocalHttpServer, LocalSmtpServer
from topicflow_dev import DevEnv

PARTITIONS = 4


def words_in(line: str) -> list[str]:
    # The generated sentences hold Latin letters with precomposed accents only,
    # where Python's \w and Java's agree.
    return re.findall(r"\w+", line.lower())


def timed_lines(count: int, seed: int, start_ms: int, span_ms: int) -> list[tuple[int, str]]:
    step = span_ms / count
    lines = itertools.islice(sentences(seed), count)
    return [(start_ms + int(i * step), line) for i, line in enumerate(lines)]


def word_truth(lines: list[tuple[int, str]]) -> collections.Counter[tuple[int, str]]:
    truth: collections.Counter[tuple[int, str]] = collections.Counter()
    for timestamp, line in lines:
        for word in words_in(line):
            truth[(window_of(timestamp), word)] += 1
    return truth


def failed_login_truth(lines: list[tuple[int, str]]) -> collections.Counter[tuple[str, int]]:
    truth: collections.Counter[tuple[str, int]] = collections.Counter()
    for timestamp, line in lines:
        fields = dict(
            (part.split(":", 1)[0].strip(), part.split(":", 1)[1].strip())
            for part in line.split("|")
        )
        if fields["action"] == "login failed":
            truth[(fields["user_id"], window_of(timestamp))] += 1
    return truth


def _difference(actual: dict[Any, int], truth: collections.Counter[Any]) -> str:
    wrong = {k: (actual.get(k), v) for k, v in truth.items() if actual.get(k) != v}
    extra = [k for k in actual if k not in truth]
    sample = list(wrong.items())[:5]
    return (
        f"{len(actual)} rows, {len(truth)} expected, {len(wrong)} wrong {sample}, extra {extra[:5]}"
    )


def test_the_three_services_match_ground_truth_and_the_aggregator_restores(
    dev_env: DevEnv, unique: str, database: str, tmp_path: Path
) -> None:
    prefix = f"sys-{unique}."
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
    state_dir = tmp_path / "state"
    env: dict[str, Any] = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "DATABASE_URL": database,
        "ALERT_WEBHOOK_URL": webhook.url(),
        "SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "EMAIL_FROM": "detector@example.com",
        "EMAIL_TO": "security@example.com",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
        "TOPICFLOW_STATE_DIR": str(state_dir),
    }
    processes: list[ServiceProcess] = []
    try:
        # Event time: the last minute, so nothing is old enough for the
        # broker's time retention, and every window is well inside the grace.
        start = window_of(int(time.time() * 1000)) - 60_000
        first = timed_lines(3_000, seed=11, start_ms=start, span_ms=40_000)
        logs = list(itertools.islice(log_lines(seed=5, start_ms=start), 6_000))
        # One more user (not one of the generator's), who crosses only the email threshold.
        mallory = [
            (
                start + 20_000 + i * 100,
                f"user_id: walter-email-only | timestamp: 2026-01-01 00:00:00 +0000 "
                f"| ip_address: 192.0.2.7 | action: login failed | message: bad password {i}",
            )
            for i in range(70)
        ]
        logs = sorted(logs + mallory)

        produce(
            bootstrap,
            f"{prefix}textlines",
            [x.encode() for _, x in first],
            timestamps=[t for t, _ in first],
        )
        # The users table: a profile (email, team) per user of the generator, and
        # for walter a team only; written as JSON here, not by services.users.
        teams = {user: f"team-{len(user) % 3}" for user, _ in failed_login_truth(logs)}
        profiles = {
            user: f'{{"email": "{user}@example.com", "team": "{team}"}}'
            for user, team in teams.items()
        }
        profiles["walter-email-only"] = '{"team": "night-shift"}'
        produce(
            bootstrap,
            f"{prefix}users",
            [p.encode() for p in profiles.values()],
            keys=[u.encode() for u in profiles],
        )
        produce(
            bootstrap,
            f"{prefix}loglines",
            [x.encode() for _, x in logs],
            timestamps=[t for t, _ in logs],
        )
        for command in ("text-processor", "aggregator", "anomaly-detector"):
            processes.append(ServiceProcess(command, env, tmp_path, command))
        text_processor, aggregator, detector = processes

        truth = word_truth(first)
        wait_until(
            lambda: table(database) == dict(truth),
            120,
            "windowed_counts",
            processes,
            lambda: _difference(table(database), truth),
        )

        failed = failed_login_truth(logs)
        urgent = {key for key, count in failed.items() if count > 100}
        email_only = {key for key, count in failed.items() if 50 < count <= 100}
        assert urgent and email_only, "the input must exercise both thresholds"

        def alerts() -> list[dict[str, Any]]:
            return [r.json() for r in webhook.requests]

        wait_until(
            lambda: (
                {
                    (
                        a["payload"]["custom_details"]["user_id"],
                        a["payload"]["custom_details"]["window_start_ms"],
                    )
                    for a in alerts()
                }
                >= urgent
            ),
            60,
            "alerts",
            processes,
        )
        time.sleep(2)  # any repeat would arrive within a few commits
        alerted = [
            (
                a["payload"]["custom_details"]["user_id"],
                a["payload"]["custom_details"]["window_start_ms"],
            )
            for a in alerts()
        ]
        assert sorted(alerted) == sorted(urgent), "one alert per attacked window, no more"
        assert all(
            a["dedup_key"] == f"{u}-{w}-urgent" for a, (u, w) in zip(alerts(), alerted, strict=True)
        )
        # Joined with the users table (a GlobalKTable loaded before the first record):
        # every alert names its user's team.
        assert all(
            a["payload"]["custom_details"]["team"] == teams[u]
            for a, (u, _w) in zip(alerts(), alerted, strict=True)
        )

        sent_emails = emailed(smtp)
        # Windows above the email threshold only: exactly one email each. Windows
        # above the urgent threshold may also have had one, if a commit saw their
        # count between the thresholds; none other may have any.
        assert email_only <= set(sent_emails)
        assert set(sent_emails) <= email_only | urgent
        assert len(sent_emails) == len(set(sent_emails)), "at most one email per window"
        # Each email went to its user, from the users table, with EMAIL_TO copied;
        # walter has no address in his profile: his goes to EMAIL_TO only.
        for received, (user, _window) in zip(smtp.messages, sent_emails, strict=True):
            if user == "walter-email-only":
                assert received.rcpt_tos == ["security@example.com"]
            else:
                assert received.rcpt_tos == [f"{user}@example.com", "security@example.com"]

        # Restore: stop the Aggregator, delete its local state, count more words
        # into the same windows, start it again.
        aggregator.terminate()
        assert aggregator.wait(30) == 0, aggregator.log()
        shutil.rmtree(state_dir, ignore_errors=True)
        second = timed_lines(1_000, seed=12, start_ms=start, span_ms=40_000)
        produce(
            bootstrap,
            f"{prefix}textlines",
            [x.encode() for _, x in second],
            timestamps=[t for t, _ in second],
        )
        restarted = ServiceProcess("aggregator", env, tmp_path, "aggregator-restarted")
        processes.append(restarted)
        truth = word_truth(first + second)
        wait_until(
            lambda: table(database) == dict(truth),
            120,
            "windowed_counts after restore",
            [text_processor, detector, restarted],
        )
        restored = re.findall(r"restored (\d+) changelog records", restarted.log())
        assert restored and sum(map(int, restored)) > 0, restarted.log()

        for process in (text_processor, detector, restarted):
            process.terminate()
        for process in (text_processor, detector, restarted):
            assert process.wait(30) == 0, process.log()
    finally:
        for process in processes:
            process.stop()
        webhook.stop()
        smtp.stop()
