"""librdkafka's connection errors in an outage: a few lines a minute per process, with a count."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time

import pytest
from confluent_kafka import KafkaError

from topicflow.brokers import kafka
from topicflow.brokers.kafka import KafkaBroker

LOGGER = "topicflow.librdkafka"
COUNT = re.compile(r"\((\d+) similar messages in the last \d+ s\)$")
REFUSED = (
    "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: "
    "Connection refused (after 0ms in state CONNECT)"
)


@pytest.fixture
def trouble(monkeypatch: pytest.MonkeyPatch) -> kafka._ConnectionTrouble:
    """A fresh per-process limiter, so that other tests' clients do not spend its budget."""
    fresh = kafka._ConnectionTrouble()
    monkeypatch.setattr(kafka, "_connection_trouble", fresh)
    return fresh


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_an_outage_logs_a_line_per_interval_for_all_clients_with_a_count(
    trouble: kafka._ConnectionTrouble,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real clients, no broker: each retries every 50 ms or so; a line per 2 s shows it all."""
    monkeypatch.setattr(kafka, "CONNECTION_LOG_EVERY_S", 2.0)
    caplog.set_level(logging.INFO, logger=LOGGER)
    bootstrap = f"127.0.0.1:{_closed_port()}"
    broker = KafkaBroker({"bootstrap.servers": bootstrap})
    consumer = broker.consumer({"bootstrap.servers": bootstrap, "group.id": "logs"})
    consumer.subscribe(["input"])
    # group.id on a producer makes librdkafka warn (CONFWARN): a line that must pass.
    producer = broker.producer({"bootstrap.servers": bootstrap, "group.id": "logs"})
    # Another factory (as the restore consumer's would be): same process, same budget.
    other = KafkaBroker({"bootstrap.servers": bootstrap})
    restore = other.consumer({"bootstrap.servers": bootstrap, "group.id": "logs-restore"})
    try:
        deadline = time.monotonic() + 6.5
        while time.monotonic() < deadline:
            consumer.consume(timeout=0.05)  # as the stream worker does
            restore.consume(timeout=0.05)
            producer.poll(0)
    finally:
        consumer.close()
        restore.close()

    messages = _messages(caplog)
    unreachable = [m for m in messages if m.startswith("Kafka unreachable: ")]
    # About 6.5 s / 2 s: the first failure, then one line per interval.
    assert 2 <= len(unreachable) <= 4, messages
    assert f"Connect to ipv4#{bootstrap} failed: Connection refused" in unreachable[0]
    assert "[thrd:" not in unreachable[0] and "in state CONNECT" not in unreachable[0]
    assert COUNT.search(unreachable[0]) is None
    counts = [int(m.group(1)) for m in map(COUNT.search, unreachable[1:]) if m]
    assert len(counts) == len(unreachable) - 1
    # librdkafka did fail dozens of times (three clients, two reports per failure).
    assert all(count > 10 for count in counts), unreachable
    # Nothing else about the connection got through, neither log lines nor error_cb.
    assert not [m for m in messages if m not in unreachable and "refused" in m], messages
    assert not [m for m in messages if m.startswith("Kafka client: ")], messages
    assert any("group.id is a consumer property" in m for m in messages), messages


def test_threads_share_one_budget(
    trouble: kafka._ConnectionTrouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    librdkafka_log = kafka._LibrdkafkaLog()
    reporters = [kafka._ErrorReporter() for _ in range(4)]
    transport = KafkaError(KafkaError._TRANSPORT, "127.0.0.1:9/bootstrap: Connection refused")
    start = threading.Barrier(4)

    def client(i: int) -> None:
        start.wait()
        for _ in range(500):
            librdkafka_log.log(logging.ERROR, "%s [%s] %s", "FAIL", f"rdkafka#c-{i}", REFUSED)
            reporters[i](transport)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_messages(caplog)) == 1

    trouble._last_line = time.monotonic() - kafka.CONNECTION_LOG_EVERY_S  # the interval is over
    librdkafka_log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#c-0", REFUSED)
    assert _messages(caplog)[1] == (
        "Kafka unreachable: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: "
        "Connection refused (3999 similar messages in the last 30 s)"
    )
    # Counted from the previous line on: the next interval's line has no count.
    trouble._last_line = time.monotonic() - kafka.CONNECTION_LOG_EVERY_S
    reporters[0](transport)
    assert _messages(caplog)[2] == "Kafka unreachable: 127.0.0.1:9/bootstrap: Connection refused"
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 3


@pytest.mark.parametrize(
    ("level", "facility", "text", "limited"),
    [
        (logging.ERROR, "FAIL", "b:9092/1: Failed to resolve 'b:9092': Name not known", True),
        (logging.WARNING, "FAIL", "b:9092/1: Disconnected (after 5ms in state UP)", True),
        (logging.WARNING, "REQTMOUT", "b:9092/1: Timed out 3 in-flight requests", True),
        (logging.WARNING, "METADATA", "Metadata request failed: Broker transport failure", True),
        (logging.ERROR, "ERROR", "rdkafka#producer-1: 1/1 brokers are down", True),
        # INFO too: librdkafka says "Disconnected" at INFO, once per connection...
        (logging.INFO, "FAIL", "b:9092/1: Disconnected (after 5ms in state UP)", True),
        # ...and a broker back from an outage, once per partition and client.
        (
            logging.INFO,
            "METADATAUPDATE",
            "b:9092/1: Partition words(0): new leader 1 not found in cache",
            True,
        ),
        # Debug output passes as is.
        (logging.DEBUG, "FAIL", "b:9092/1: Disconnected (after 5ms in state UP)", False),
        (logging.WARNING, "CONFWARN", "Configuration property acks is a producer property", False),
        (logging.ERROR, "TXNERR", "Current transaction failed in state InTransaction", False),
    ],
)
def test_which_log_lines_are_connection_trouble(
    trouble: kafka._ConnectionTrouble,
    caplog: pytest.LogCaptureFixture,
    level: int,
    facility: str,
    text: str,
    limited: bool,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    librdkafka_log = kafka._LibrdkafkaLog()
    for _ in range(3):
        librdkafka_log.log(level, "%s [%s] %s", facility, "rdkafka#producer-1", text)
    messages = _messages(caplog)
    if limited:
        assert messages == [f"Kafka unreachable: {text}"]
    else:
        assert messages == [f"{facility} [rdkafka#producer-1] {text}"] * 3


def test_error_callback_limits_connection_errors_and_passes_the_others(
    trouble: kafka._ConnectionTrouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    report = kafka._ErrorReporter()
    for _ in range(3):
        report(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        report(KafkaError(KafkaError._RESOLVE, "b:9092/1: Failed to resolve 'b:9092'"))
    report(KafkaError(KafkaError._MAX_POLL_EXCEEDED, "Application maximum poll interval"))
    report(KafkaError(KafkaError._TRANSPORT, "b:9092/1: Connection refused", fatal=True))
    assert _messages(caplog) == [
        "Kafka unreachable: 1/1 brokers are down",
        "Kafka client: Application maximum poll interval",
        "fatal Kafka client error: b:9092/1: Connection refused",
    ]
