"""The blog's three topologies in Quix Streams, for bench/compare.py.

Runs in the bench's virtualenv (`.dev/bench-venv`, made by bench/compare.py
from bench/requirements.txt): Quix Streams pins confluent-kafka below 2.13,
which topicflow's lock cannot share.

Usage: quix_bench.py TOPOLOGY BOOTSTRAP PREFIX APPLICATION_ID STATE_DIR [DATABASE_URL]
Runs until SIGTERM; prints RUNNING once the group has assigned its partitions.
Settings as the other systems': at-least-once, 1 s commits, earliest offsets.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import psycopg
from quixstreams import Application
from quixstreams.sinks import BatchingSink, SinkBatch

WINDOW_MS = 10_000
GRACE_MS = 300_000
URGENT, EMAIL = 100, 50
NON_WORD = re.compile(r"\W+")  # Python's \w is Unicode, as the Text Processor's split


def words(line: str) -> list[str]:
    return [word for word in NON_WORD.split(line.lower()) if word]


def user_id(line: str) -> str | None:
    field, _, _ = line.partition("|")
    key, colon, value = field.partition(":")
    if not colon or key.strip() != "user_id":
        return None
    return value.strip() or None


class WindowedCountsSink(BatchingSink):
    """Upserts the latest count of each (window, word), once per checkpoint (commit)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self._connection = psycopg.connect(url)
        self._connection.execute(
            "CREATE TABLE IF NOT EXISTS windowed_counts (id serial PRIMARY KEY, "
            "time_window bigint NOT NULL, word text NOT NULL, count bigint NOT NULL)"
        )
        self._connection.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS windowed_counts_window_word "
            "ON windowed_counts (time_window, word)"
        )
        self._connection.commit()

    def write(self, batch: SinkBatch) -> None:
        latest: dict[tuple[int, str], int] = {}
        for item in batch:
            word = item.key.decode() if isinstance(item.key, bytes) else item.key
            latest[(item.value["start"], word)] = item.value["value"]
        if not latest:
            return
        rows = list(latest.items())
        self._connection.execute(
            "INSERT INTO windowed_counts (time_window, word, count) "
            "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[]) "
            "ON CONFLICT (time_window, word) DO UPDATE SET count = EXCLUDED.count",
            ([k[0] for k, _ in rows], [k[1] for k, _ in rows], [v for _, v in rows]),
        )
        self._connection.commit()


def build(app: Application, topology: str, prefix: str, database: str | None) -> None:
    if topology == "text-processor":
        lines = app.topic(prefix + "textlines", value_deserializer="str")
        out = app.topic(prefix + "words", value_serializer="str")
        app.dataframe(lines).apply(words, expand=True).to_topic(out)
        return
    if topology == "aggregator":
        assert database is not None
        source = app.topic(prefix + "words", value_deserializer="str")
        (
            app.dataframe(source)
            .group_by(lambda word: word, name="word")
            .tumbling_window(duration_ms=WINDOW_MS, grace_ms=GRACE_MS, name="windowed-counts")
            .count()
            .current()
            .sink(WindowedCountsSink(database))
        )
        return
    source = app.topic(prefix + "loglines", value_deserializer="str")
    out = app.topic(prefix + "anomalies", value_serializer="str")
    counts = (
        app.dataframe(source)
        .filter(lambda line: "action: login failed" in line)
        .group_by(lambda line: user_id(line) or "", name="user")
        .filter(lambda line: bool(user_id(line)))
        .tumbling_window(duration_ms=WINDOW_MS, grace_ms=GRACE_MS, name="failed-logins")
        .count()
        .current()
    )

    def alert(window: dict[str, Any], key: Any, _timestamp: int, _headers: Any) -> str:
        user = key.decode() if isinstance(key, bytes) else key
        severity = "urgent" if window["value"] > URGENT else "email"
        return json.dumps(
            {
                "user_id": user,
                "window_start": window["start"],
                "count": window["value"],
                "severity": severity,
            }
        )

    counts.filter(lambda window: window["value"] > EMAIL).apply(alert, metadata=True).to_topic(out)


def main() -> int:
    topology, bootstrap, prefix, application_id, state_dir = sys.argv[1:6]
    database = sys.argv[6] if len(sys.argv) > 6 else None
    app = Application(
        broker_address=bootstrap,
        consumer_group=application_id,
        auto_offset_reset="earliest",
        commit_interval=1.0,
        processing_guarantee="at-least-once",
        state_dir=state_dir,
    )
    build(app, topology, prefix, database)
    on_assign = app._on_assign
    announced = False

    def announce(consumer: Any, partitions: Any) -> None:
        nonlocal announced
        on_assign(consumer, partitions)
        if not announced:
            announced = True
            print("RUNNING", flush=True)

    app._on_assign = announce  # type: ignore[method-assign]
    app.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
