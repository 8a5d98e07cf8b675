"""The Aggregator service on the TopologyTestDriver: words -> counts per 10 s window -> SQLite.

The ground truth is computed here, from the generated input alone: a Counter
over (timestamp - timestamp % 10000, word).
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.aggregator import SERVICE, STORE, build_topology, persistent_from_env
from services.windowed_counts import sqlite_sink
from topicflow import StreamsConfig
from topicflow.testing import TopologyTestDriver

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
T0 = 1_795_600_800_000  # 2026-11-25T10:00:00Z, a window start
WINDOW_MS = 10_000

Truth = dict[tuple[int, str], int]


def service_config() -> StreamsConfig:
    return StreamsConfig(application_id=SERVICE.application_name, **SERVICE.settings)


def generate(seed: int, n: int, windows: int, jitter_ms: int = 0) -> list[tuple[str, int]]:
    """(word, timestamp) over `windows` windows from T0, roughly in time order."""
    rng = random.Random(seed)
    span = windows * WINDOW_MS
    records = []
    for i in range(n):
        t = T0 + i * span // n + rng.randrange(span // n + 1)
        t -= rng.randrange(jitter_ms + 1)
        records.append((rng.choice(WORDS), t))
    return records


def truth(records: list[tuple[str, int]]) -> Truth:
    return dict(Counter((t - t % WINDOW_MS, word) for word, t in records))


def table(path: Path) -> Truth:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT time_window, word, count FROM windowed_counts").fetchall()
    result = {(start, word): count for start, word, count in rows}
    assert len(result) == len(rows)  # (time_window, word) is unique
    return result


def run(
    path: Path,
    records: list[tuple[str, int]],
    grace: timedelta = timedelta(minutes=5),
    commit_every: int = 1,
    persistent: bool = False,
) -> TopologyTestDriver:
    """Pipe `records`, committing every `commit_every` records (0: never)."""
    topology = build_topology("", sink=sqlite_sink(path), grace=grace, persistent=persistent)
    config = service_config().with_overrides(state_dir=str(path.parent / "state"))
    driver = TopologyTestDriver(topology, config, commit_every_record=commit_every == 1)
    words = driver.create_input_topic("words")
    for i, (word, timestamp) in enumerate(records, 1):
        # The Text Processor writes words with a null key.
        words.pipe_input(None, word, timestamp=timestamp)
        if commit_every > 1 and i % commit_every == 0:
            driver.commit()
    return driver


def test_truth_sanity() -> None:
    assert truth([("a", T0), ("a", T0 + 9_999), ("a", T0 + 10_000), ("b", T0 + 1)]) == {
        (T0, "a"): 2,
        (T0 + 10_000, "a"): 1,
        (T0, "b"): 1,
    }


@pytest.mark.parametrize("persistent", [False, True], ids=["in-memory", "rocksdb"])
def test_windowed_counts_table_equals_the_ground_truth(tmp_path: Path, persistent: bool) -> None:
    path = tmp_path / "c.sqlite"
    records = generate(seed=1, n=1_200, windows=12, jitter_ms=4_000)
    expected = truth(records)
    assert len({start for start, _ in expected}) >= 12
    with run(path, records, persistent=persistent) as driver:
        assert driver.metrics.late_records == 0
        assert table(path) == expected
        # The store agrees with the table.
        store = {(start, word): n for word, start, n in driver.get_window_store(STORE).all()}
        assert store == expected


def test_replaying_the_same_input_converges_to_the_same_table(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    records = generate(seed=2, n=3_000, windows=6, jitter_ms=2_000)
    expected = truth(records)
    with run(path, records, commit_every=100) as driver:
        driver.commit()
    assert table(path) == expected
    # A fresh driver (empty store) over the same file and input: the same rows.
    with run(path, records, commit_every=7) as driver:
        driver.commit()
    assert table(path) == expected


def test_replay_after_a_partial_run_converges(tmp_path: Path) -> None:
    """A crash after half the input, then the whole input again: upserts fix the counts."""
    path = tmp_path / "c.sqlite"
    records = generate(seed=3, n=2_000, windows=5)
    with run(path, records[:1_000], commit_every=50) as driver:
        driver.commit()
    assert table(path) == truth(records[:1_000])
    with run(path, records, commit_every=50) as driver:
        driver.commit()
    assert table(path) == truth(records)


def test_commits_only_at_the_end_give_the_same_table(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    records = generate(seed=4, n=2_000, windows=8, jitter_ms=3_000)
    with run(path, records, commit_every=0) as driver:
        assert not path.exists() or table(path) == {}
        driver.commit()
        assert table(path) == truth(records)


def test_late_words_beyond_grace_are_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    records = [("alpha", T0 + 1_000), ("alpha", T0 + 25_000), ("alpha", T0 + 9_000)]
    with run(path, records, grace=timedelta(0)) as driver:
        assert driver.metrics.late_records == 1
        assert table(path) == {(T0, "alpha"): 1, (T0 + 20_000, "alpha"): 1}


def test_words_are_grouped_through_a_repartition_topic(tmp_path: Path) -> None:
    sink = sqlite_sink(tmp_path / "c.sqlite")
    topology = build_topology("staging.", sink=sink, grace=timedelta(0))
    assert set(topology.internal_topics) == {f"{STORE}-repartition", f"{STORE}-changelog"}
    assert len(topology.subtopologies()) == 2
    source_topics = {
        topic for sub in topology.subtopologies() for node in sub.nodes for topic in _topics(node)
    }
    assert "staging.words" in source_topics


def _topics(node: Any) -> list[str]:
    return list(getattr(node, "topics", []) or [])


@pytest.mark.parametrize("grace_s", [0, 60])
def test_store_retention_is_window_plus_grace(grace_s: int, tmp_path: Path) -> None:
    sink = sqlite_sink(tmp_path / "c.sqlite")
    topology = build_topology("", sink=sink, grace=timedelta(seconds=grace_s))
    assert topology.state_stores[STORE].retention_ms == WINDOW_MS + grace_s * 1000


@pytest.mark.parametrize(
    ("setting", "persistent"), [(None, False), ("in-memory", False), ("RocksDB", True)]
)
def test_the_state_store_is_chosen_by_aggregator_state_store(
    setting: str | None, persistent: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if setting is None:
        monkeypatch.delenv("AGGREGATOR_STATE_STORE", raising=False)
    else:
        monkeypatch.setenv("AGGREGATOR_STATE_STORE", setting)
    topology = build_topology("", sink=sqlite_sink(tmp_path / "c.sqlite"))
    assert topology.state_stores[STORE].persistent is persistent


def test_an_unknown_state_store_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from topicflow.errors import ConfigError

    monkeypatch.setenv("AGGREGATOR_STATE_STORE", "redis")
    with pytest.raises(ConfigError, match="AGGREGATOR_STATE_STORE must be in-memory or rocksdb"):
        persistent_from_env()
