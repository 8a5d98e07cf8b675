"""Helpers for tests on the real broker: topics, producing, reading back, service processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

BIN = Path(sys.executable).parent


# The dead-letter topics of the three services (services/service.py), without prefix.
DEAD_LETTER_TOPICS = ("text-processor-dlq", "aggregator-dlq", "anomaly-detector-dlq")


def dead_letter_topics(prefix: str) -> list[str]:
    """Every service's dead-letter topic under `prefix`: a service will not start without it."""
    return [f"{prefix}{t}" for t in DEAD_LETTER_TOPICS]


def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    for future in futures.values():
        future.result(30)
    deadline = time.monotonic() + 30
    wanted = set(names)
    while time.monotonic() < deadline:
        if wanted <= set(admin.list_topics(timeout=10).topics):
            return
        time.sleep(0.1)
    raise AssertionError(f"topics {wanted} not visible after creation")


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    rate: float = 0,
    keys: Iterable[bytes | None] | None = None,
    timestamps: Iterable[int] | None = None,
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    started = time.monotonic()
    sent = 0
    key_iter = iter(keys) if keys is not None else None
    time_iter = iter(timestamps) if timestamps is not None else None
    for value in values:
        key = next(key_iter) if key_iter is not None else None
        timestamp = next(time_iter) if time_iter is not None else 0
        while True:
            try:
                producer.produce(topic, value, key, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        producer.poll(0)
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    assert producer.flush(30) == 0
    return sent


def end_offsets(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"probe-{uuid.uuid4()}"})
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        ]
    finally:
        consumer.close()


def read_values(bootstrap: str, topic: str, at_least: int, timeout: float) -> list[bytes | None]:
    """Every value of `topic` from the start, once at least `at_least` are there (or timeout),
    and then until the topic is quiet for a second (so that extra records are seen too)."""
    deadline = time.monotonic() + timeout
    while sum(end_offsets(bootstrap, topic)) < at_least and time.monotonic() < deadline:
        time.sleep(0.25)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes | None] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline + 5:
            batch = consumer.consume(10_000, 0.2)
            if batch:
                quiet_since = time.monotonic()
                for message in batch:
                    assert message.error() is None, message.error()
                    values.append(message.value())
            elif len(values) >= at_least and time.monotonic() - quiet_since > 1.0:
                break
    finally:
        consumer.close()
    return values


def committed_total(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return sum(max(tp.offset, 0) for tp in tps)
    finally:
        consumer.close()


class ServiceProcess:
    """A service's console command in its own process, its log in a file."""

    def __init__(
        self,
        command: str,
        env: dict[str, str],
        log_dir: Path,
        name: str,
        args: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [str(BIN / command), *args],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, pattern: str, timeout: float, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.log())) >= count:
                return
            if self.process.poll() is not None:
                raise AssertionError(f"process exited ({self.process.returncode}):\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen in {timeout} s:\n{self.log()}")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait(10)


WINDOW_MS = 10_000


def window_of(timestamp: int) -> int:
    return timestamp - timestamp % WINDOW_MS


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    logs: list[ServiceProcess],
    explain: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for process in logs:
            if process.process.poll() is not None:
                raise AssertionError(f"{process.log_path.name} exited:\n{process.log()}")
        time.sleep(0.5)
    tails = "\n".join(
        f"--- {p.log_path.name}\n" + "\n".join(p.log().splitlines()[-15:]) for p in logs
    )
    raise AssertionError(f"timed out waiting for {what}: {explain()}\n{tails}")


def table(database_url: str) -> dict[tuple[int, str], int]:
    url = database_url.replace("postgres://", "postgresql://", 1)
    try:
        with psycopg.connect(url) as connection:
            rows = connection.execute("SELECT time_window, word, count FROM windowed_counts")
            return {(r[0], r[1]): r[2] for r in rows}
    except psycopg.errors.UndefinedTable:
        return {}


def differences(found: dict[tuple[int, str], int], truth: dict[tuple[int, str], int]) -> str:
    """What a failed comparison shows: totals, and the first windows that differ."""
    wrong = sorted(k for k in truth.keys() | found.keys() if found.get(k) != truth.get(k))
    shown = ", ".join(f"{k}: {found.get(k)} (truth {truth.get(k)})" for k in wrong[:8])
    return (
        f"{sum(found.values())} counted for {sum(truth.values())} words; "
        f"{len(wrong)} windows differ: {shown}"
    )


# -- records with their coordinates and headers (dead letters, changelogs) ---------------------


def produce_recorded(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    timestamps: Iterable[int],
    config: dict[str, Any] | None = None,
) -> list[tuple[int, int]]:
    """Produce keyless records; (partition, offset) of each, from its delivery report."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **(config or {})})
    placed: dict[int, tuple[int, int]] = {}
    failed: list[str] = []

    def report(index: int) -> Callable[[Any, Any], None]:
        def delivered(error: Any, message: Any) -> None:
            if error is not None:
                failed.append(f"record {index}: {error}")
            else:
                placed[index] = (message.partition(), message.offset())

        return delivered

    index = -1
    for index, (value, timestamp) in enumerate(zip(values, timestamps, strict=True)):
        while True:
            try:
                producer.produce(topic, value, None, timestamp=timestamp, on_delivery=report(index))
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert not failed, failed
    return [placed[i] for i in range(index + 1)]


def read_records(bootstrap: str, topic: str, timeout: float = 30) -> list[Any]:
    """Every record of `topic` up to its end offsets when called (confluent-kafka Messages)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        deadline = time.monotonic() + timeout
        partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for p in partitions:
            low, high = _watermarks(consumer, TopicPartition(topic, p), deadline)
            if high > low:
                ends[p] = high
                starts.append(TopicPartition(topic, p, low))
        records: list[Any] = []
        if not starts:
            return records
        consumer.assign(starts)
        while ends:
            assert time.monotonic() < deadline, f"{topic}: not read to its end in {timeout} s"
            for message in consumer.consume(10_000, 0.2):
                assert message.error() is None, message.error()
                partition, offset = message.partition() or 0, message.offset() or 0
                if offset < ends.get(partition, -1):
                    records.append(message)
                if offset >= ends.get(partition, 0) - 1:
                    ends.pop(partition, None)
        return records
    finally:
        consumer.close()


def _watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> Any:
    # Just after the broker started, its partitions may have no leader yet.
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=10)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def record_at(bootstrap: str, topic: str, partition: int, offset: int) -> Any:
    """The record of `topic` at `partition` and `offset` (a confluent-kafka Message)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                assert (message.partition(), message.offset()) == (partition, offset)
                return message
        raise AssertionError(f"no record at {topic}[{partition}]@{offset}")
    finally:
        consumer.close()


def windowed_counts_of_changelog(bootstrap: str, changelog: str) -> dict[tuple[str, int], int]:
    """The latest count per (key, window start) in a windowed count's changelog.

    A windowed store's changelog key is the key's bytes, then the window start
    (8 bytes) and a sequence number (4 bytes), big-endian; the value is a Long.
    """
    counts: dict[tuple[str, int], int] = {}
    for message in read_records(bootstrap, changelog):
        key = message.key()
        start = int.from_bytes(key[-12:-4], "big", signed=True)
        name = key[:-12].decode()
        value = message.value()
        if value is None:
            counts.pop((name, start), None)
        else:
            counts[(name, start)] = int.from_bytes(value, "big", signed=True)
    return counts


def headers_of(message: Any) -> dict[str, str]:
    """A record's headers as text (dead letters carry UTF-8 strings)."""
    return {name: (value or b"").decode() for name, value in message.headers() or []}


def alerted(webhook: Any) -> list[tuple[str, int]]:
    """(user, window start) of each alert a LocalHttpServer received, in order."""
    details = [r.json()["payload"]["custom_details"] for r in webhook.requests]
    return [(d["user_id"], d["window_start_ms"]) for d in details]


def emailed(smtp: Any) -> list[tuple[str, int]]:
    """(user, window start) of each email a LocalSmtpServer received, from its body's fields."""
    found = []
    for received in smtp.messages:
        text = received.message.get_content()
        user = re.search(r"^user_id: (\S+)\s*$", text, re.M)
        window = re.search(r"^window: \[(\d+), ", text, re.M)
        assert user and window, text
        found.append((user.group(1), int(window.group(1))))
    return found
