"""generate-text, generate-logs and generate-users as commands against the real broker."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from services.logs import parse_log_line
from tests.integration.kafka_tools import BIN, create_topics, read_values
from topicflow_dev import DevEnv


def _run(command: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_text_sends_the_lines_of_a_file(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    prefix = f"gen-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}textlines"], 2)
    source = tmp_path / "book.txt"
    source.write_text("First line.\n\n   \nSecond line, déjà vu.\n", encoding="utf-8")
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": prefix}
    done = _run("generate-text", env, "--file", str(source), "--rate", "0")
    assert done.returncode == 0, done.stderr
    values = read_values(dev_env.bootstrap_servers, f"{prefix}textlines", 2, 20)
    assert sorted(v.decode() for v in values if v) == ["First line.", "Second line, déjà vu."]


def test_generate_logs_sends_parseable_lines(dev_env: DevEnv, unique: str) -> None:
    prefix = f"gen-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}loglines"], 2)
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": prefix}
    done = _run("generate-logs", env, "--count", "300", "--rate", "3000")
    assert done.returncode == 0, done.stderr
    values = read_values(dev_env.bootstrap_servers, f"{prefix}loglines", 300, 20)
    assert len(values) == 300
    assert all(parse_log_line(v.decode()) is not None for v in values if v)


def test_generate_users_writes_a_profile_per_user(dev_env: DevEnv, unique: str) -> None:
    prefix = f"gen-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}users"], 2)
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": prefix}
    done = _run("generate-users", env, "--users", "3", "--attackers", "1")
    assert done.returncode == 0, done.stderr
    values = read_values(dev_env.bootstrap_servers, f"{prefix}users", 4, 20)
    profiles = sorted((json.loads(v) for v in values if v), key=lambda p: p["email"])
    assert [p["email"] for p in profiles] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "mallory@example.com",
    ]
    assert all(p["team"] for p in profiles)


def test_generators_refuse_a_missing_topic(dev_env: DevEnv, unique: str) -> None:
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": f"absent-{unique}."}
    for command, service, args in (
        ("generate-text", "text-processor", ("--count", "1")),
        ("generate-logs", "anomaly-detector", ("--count", "1")),
        ("generate-users", "anomaly-detector", ("--users", "1")),
    ):
        done = _run(command, env, *args)
        assert done.returncode == 2
        assert f"topicflow topics {service}" in done.stderr
        assert "Traceback" not in done.stderr


def test_sigterm_stops_generate_text_after_delivering_every_line(
    dev_env: DevEnv, unique: str
) -> None:
    import re
    import signal
    import time

    prefix = f"gen-{unique}."
    create_topics(dev_env.bootstrap_servers, [f"{prefix}textlines"], 2)
    env = {"KAFKA_URL": dev_env.kafka_url, "KAFKA_PREFIX": prefix}
    process = subprocess.Popen(
        [str(BIN / "generate-text"), "--rate", "3000"],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.5)
    process.send_signal(signal.SIGTERM)  # what Heroku sends
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    stopped = re.search(r"stopped after ([\d,]+) lines delivered", stderr)
    assert stopped, stderr
    delivered = int(stopped.group(1).replace(",", ""))
    assert delivered > 1_000
    # Every line it counted is in the topic: the queue was flushed before exiting.
    assert (
        len(read_values(dev_env.bootstrap_servers, f"{prefix}textlines", delivered, 20))
        == delivered
    )
