"""The services on a broker configured like Apache Kafka on Heroku.

SSL with client certificates (no host names in the broker's certificate),
prefixed Read/Write/Describe ACLs, no topic creation, no transactions. The
services get nothing but Heroku's variables. Each misconfiguration must end
the process within seconds with one line that says what to fix, and never
print a certificate or key.
"""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from services import aggregator, anomaly_detector, text_processor
from services.sentences import sentences
from tests.integration.heroku_conftest import HerokuApp
from tests.integration.kafka_tools import ServiceProcess, table, wait_until, window_of
from topicflow_dev.heroku_broker import HerokuKafka

PARTITIONS = 4


def create_service_topics(app: HerokuApp, service: object) -> None:
    """Every topic a service needs, created as the operator (apps may not, on Heroku)."""
    environ = {"KAFKA_PREFIX": app.prefix}
    topology = service.topology(environ)  # type: ignore[attr-defined]
    app_id = service.config(environ).application_id  # type: ignore[attr-defined]
    plain = [
        *service.input_topics,  # type: ignore[attr-defined]
        *service.output_topics,  # type: ignore[attr-defined]
        service.dead_letter_topic,  # type: ignore[attr-defined]
    ]
    existing = set(app.created)
    app.create_topics([t for t in plain if app.topic(t) not in existing], PARTITIONS)
    for internal in topology.internal_topics.values():
        name = internal.full_name(app_id)
        app.kafka.create_topics([name], PARTITIONS, dict(internal.config) or None)
        app.created.append(name)


def produce_as_operator(kafka: HerokuKafka, topic: str, lines: list[tuple[int, str]]) -> None:
    producer = Producer({"bootstrap.servers": kafka.operator_bootstrap, "linger.ms": 5})
    for timestamp, line in lines:
        producer.produce(topic, line.encode(), timestamp=timestamp)
    assert producer.flush(30) == 0


def count_as_operator(kafka: HerokuKafka, topic: str, at_least: int, timeout: float) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.operator_bootstrap,
            "group.id": f"operator-{time.time_ns()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline and seen < at_least:
        seen += len([m for m in consumer.consume(1000, 0.2) if m.error() is None])
    consumer.close()
    return seen


def assert_no_secret(text: str, app: HerokuApp) -> None:
    for variable in ("KAFKA_CLIENT_CERT_KEY", "KAFKA_CLIENT_CERT", "KAFKA_TRUSTED_CERT"):
        body = app.env[variable].strip().splitlines()[1]  # a line of base64 from the PEM
        assert body not in text, f"{variable} leaked"


def test_the_services_run_on_heroku_like_kafka_with_only_herokus_variables(
    heroku_app: HerokuApp, database: str, tmp_path: Path
) -> None:
    for service in (text_processor.SERVICE, aggregator.SERVICE, anomaly_detector.SERVICE):
        create_service_topics(heroku_app, service)
    env = {
        **heroku_app.env,
        "DATABASE_URL": database,
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_STATE_DIR": str(tmp_path / "state"),
    }
    start = window_of(int(time.time() * 1000)) - 40_000
    lines = [(start + i * 10, s) for i, s in enumerate(itertools.islice(sentences(21), 2_000))]
    truth: dict[tuple[int, str], int] = {}
    for timestamp, line in lines:
        for word in re.findall(r"\w+", line.lower()):
            key = (window_of(timestamp), word)
            truth[key] = truth.get(key, 0) + 1
    attack = [
        (
            start + 5_000 + i * 20,
            f"user_id: eve | timestamp: 2026-01-01 00:00:00 +0000 | "
            f"ip_address: 192.0.2.66 | action: login failed | message: try {i}",
        )
        for i in range(120)
    ]
    produce_as_operator(heroku_app.kafka, heroku_app.topic("textlines"), lines)
    produce_as_operator(heroku_app.kafka, heroku_app.topic("loglines"), attack)
    processes = [
        ServiceProcess(command, env, tmp_path, command)
        for command in ("text-processor", "aggregator", "anomaly-detector")
    ]
    try:
        wait_until(lambda: table(database) == truth, 90, "windowed_counts", processes)
        # 120 failed logins in one window: one alert (and no email: the first count
        # the detector sees is past both thresholds, or it saw one in between).
        assert count_as_operator(heroku_app.kafka, heroku_app.topic("anomalies"), 1, 30) >= 1
        for process in processes:
            process.terminate()
        for process in processes:
            assert process.wait(30) == 0, process.log()
            assert_no_secret(process.log(), heroku_app)
    finally:
        for process in processes:
            process.stop()


def _fails_fast(env: dict[str, str], tmp_path: Path, name: str) -> tuple[str, float]:
    started = time.monotonic()
    process = ServiceProcess("text-processor", env, tmp_path, name)
    code = process.wait(60)
    elapsed = time.monotonic() - started
    assert code == 2, process.log()
    assert "Traceback" not in process.log()
    lines = [line for line in process.log().splitlines() if line.startswith("text-processor:")]
    assert len(lines) == 1, process.log()
    return lines[0], elapsed


def test_missing_topic_is_named_with_the_command_that_creates_it(
    heroku_app: HerokuApp, tmp_path: Path
) -> None:
    line, elapsed = _fails_fast(heroku_app.env, tmp_path, "missing")
    assert f"source topics missing: {heroku_app.prefix}textlines" in line
    assert "topicflow topics" in line
    assert elapsed < 10


def test_a_wrong_prefix_says_to_check_kafka_prefix(heroku_app: HerokuApp, tmp_path: Path) -> None:
    create_service_topics(heroku_app, text_processor.SERVICE)
    env = {**heroku_app.env, "KAFKA_PREFIX": "someone-else."}
    line, elapsed = _fails_fast(env, tmp_path, "prefix")
    assert "KAFKA_PREFIX" in line
    assert elapsed < 10


def test_a_client_certificate_from_another_ca_is_refused_with_what_to_check(
    heroku_app: HerokuApp, tmp_path: Path
) -> None:
    kafka = heroku_app.kafka
    env = {
        **heroku_app.env,
        "KAFKA_CLIENT_CERT": kafka.unknown_ca_client_cert,
        "KAFKA_CLIENT_CERT_KEY": kafka.unknown_ca_client_cert_key,
    }
    line, elapsed = _fails_fast(env, tmp_path, "bad-cert")
    assert "KAFKA_CLIENT_CERT" in line
    assert elapsed < 10
    assert kafka.unknown_ca_client_cert_key.strip().splitlines()[1] not in line


def test_an_untrusted_broker_certificate_says_to_check_kafka_trusted_cert(
    heroku_app: HerokuApp, tmp_path: Path
) -> None:
    env = {**heroku_app.env, "KAFKA_TRUSTED_CERT": heroku_app.kafka.next_ca_cert}
    line, elapsed = _fails_fast(env, tmp_path, "bad-ca")
    assert "KAFKA_TRUSTED_CERT" in line
    assert elapsed < 10


def test_exactly_once_fails_fast_where_transactions_are_refused(
    heroku_app: HerokuApp, tmp_path: Path
) -> None:
    create_service_topics(heroku_app, text_processor.SERVICE)
    env = {**heroku_app.env, "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2"}
    line, elapsed = _fails_fast(env, tmp_path, "eos")
    assert "at_least_once" in line and "transaction" in line.lower()
    assert elapsed < 10


def test_ca_rotation_two_trusted_certificates_work(heroku_app: HerokuApp, tmp_path: Path) -> None:
    create_service_topics(heroku_app, text_processor.SERVICE)
    rotated = heroku_app.kafka.next_ca_cert + "\n" + heroku_app.env["KAFKA_TRUSTED_CERT"]
    env = {**heroku_app.env, "KAFKA_TRUSTED_CERT": rotated}
    process = ServiceProcess("text-processor", env, tmp_path, "rotation")
    try:
        process.wait_for_log(r"assigned \d+ partitions", 30)
        process.terminate()
        assert process.wait(30) == 0, process.log()
    finally:
        process.stop()
