"""Aggregator: `words` -> count per word in 10-second windows -> table `windowed_counts`.

The blog's Java snippet, ported line by line:

    builder.stream(f"{prefix}words")
        .group_by(lambda key, word: word)
        .windowed_by(TimeWindows.of_size_and_grace(WINDOW, GRACE))
        .count(Materialized.as_("windowed-counts"))
        .to_stream()
        .process(windowed_count_sink_from_env())

Rows go to PostgreSQL (`DATABASE_URL`) or, with no database configured, to a
SQLite file; each commit upserts the latest count of every window and word
updated since the previous one, before the input offsets are committed.
"""

from __future__ import annotations

import os
from datetime import timedelta

from services.service import SERVICE_SETTINGS, Service
from services.windowed_counts import WindowedCountSink, windowed_count_sink_from_env
from topicflow import ConfigError, Materialized, StreamsBuilder, TimeWindows, Topology

WINDOW = timedelta(seconds=10)
# Grace: how late (in event time) a word may arrive and still be counted.
# `group_by` sends words through a repartition topic, where records from every
# upstream partition interleave: when an upstream instance lags (it failed
# over, restarting from its last commit after a session timeout), its words
# arrive behind the others'. Java's `TimeWindows.of` allowed 24 hours; results
# here are upserts, so a long grace costs no latency, only memory (windows are
# kept for window + grace). Five minutes covers a failover with room to spare
# while keeping ~30 windows per word; AGGREGATOR_GRACE_SECONDS changes it.
DEFAULT_GRACE = timedelta(minutes=5)
STORE = "windowed-counts"


def grace_from_env() -> timedelta:
    raw = os.environ.get("AGGREGATOR_GRACE_SECONDS")
    if not raw:
        return DEFAULT_GRACE
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"AGGREGATOR_GRACE_SECONDS must be a number, got {raw!r}") from None
    if seconds < 0:
        raise ConfigError(f"AGGREGATOR_GRACE_SECONDS must not be negative, got {raw!r}")
    return timedelta(seconds=seconds)


def persistent_from_env() -> bool:
    """AGGREGATOR_STATE_STORE: `in-memory` (default, fastest) or `rocksdb`, for more
    distinct words per window than the dyno's memory holds (bench/keys.py)."""
    raw = os.environ.get("AGGREGATOR_STATE_STORE", "in-memory").strip().lower()
    if raw not in ("in-memory", "rocksdb"):
        raise ConfigError(f"AGGREGATOR_STATE_STORE must be in-memory or rocksdb, got {raw!r}")
    return raw == "rocksdb"


def build_topology(
    prefix: str = "",
    sink: WindowedCountSink | None = None,
    grace: timedelta | None = None,
    persistent: bool | None = None,
) -> Topology:
    windows = TimeWindows.of_size_and_grace(
        WINDOW, grace if grace is not None else grace_from_env()
    )
    materialized = Materialized.as_(STORE).with_retention(windows.size_ms + windows.grace_ms)
    if persistent if persistent is not None else persistent_from_env():
        materialized = materialized.persistent_store()
    builder = StreamsBuilder()
    (
        builder.stream(f"{prefix}words")
        .group_by(lambda _key, word: word)
        .windowed_by(windows)
        .count(materialized)
        .to_stream()
        .process(sink if sink is not None else windowed_count_sink_from_env())
    )
    return builder.build()


SERVICE = Service(
    name="aggregator",
    application_name="aggregator-app",
    input_topics=("words",),
    output_topics=(),
    build_topology=build_topology,
    settings=SERVICE_SETTINGS,
)


def main(argv: list[str] | None = None) -> int:
    return SERVICE.main(argv, description="words -> counts per 10 s window -> windowed_counts")


if __name__ == "__main__":
    raise SystemExit(main())
