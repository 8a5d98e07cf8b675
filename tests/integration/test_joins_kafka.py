"""Joins on the real broker: 4 partitions, two instances, a scale-out and a SIGKILL.

A stream-table join and a windowed stream-stream join. The join application
(tests/integration/join_app.py) runs as separate processes under
exactly_once_v2. One instance starts alone; a second joins while input flows
(tasks, and the state of the table or of the join windows, move to it); then
the first is killed with SIGKILL. What the output topic holds (read committed)
must equal the ground truth computed here from the input, record for record:
nothing lost, nothing twice, every record joined with the right partner.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.integration.kafka_tools import (
    ServiceProcess,
    committed_total,
    create_topics,
    produce,
    read_values,
    wait_until,
)
from topicflow_dev import DevEnv

PARTITIONS = 4
CUSTOMERS = 150  # c0..c149 have a profile ...
ORDERING_CUSTOMERS = 200  # ... c150..c199 order without one
DELETED = 10  # c0..c9 had one, deleted by a tombstone
ORDERS = 24_000
RATE = 2_000  # about 12 s of input per topic: it spans the scale-out and the kill
# Stream-stream: impressions of one ad are ADS x SPACING_MS = 25 s apart, more
# than the 10 s window, and each has its click CLICK_AFTER_MS later.
ADS = 500
SPACING_MS = 50
CLICK_AFTER_MS = 2_000
# Event time of the recent past: older records would be the broker's to delete
# (time retention) while the test runs.
NOW = int(time.time() * 1000)


def _instance(env: dict[str, str], tmp_path: Path, name: str, app: str) -> ServiceProcess:
    # Each instance its own state directory, as on two machines.
    env = {**env, "TOPICFLOW_STATE_DIR": str(tmp_path / f"state-{name}")}
    return ServiceProcess(
        "python", env, tmp_path, name, args=("-m", "tests.integration.join_app", app)
    )


@dataclass
class Input:
    """Records to produce into a topic while the instances come and go."""

    topic: str
    keys: list[str]
    values: list[str]
    timestamps: list[int]

    def producer(self, bootstrap: str) -> threading.Thread:
        return threading.Thread(
            target=produce,
            args=(bootstrap, self.topic, [v.encode() for v in self.values]),
            kwargs={
                "rate": RATE,
                "keys": [k.encode() for k in self.keys],
                "timestamps": self.timestamps,
            },
        )


def _exact_across_scale_out_and_kill(
    dev_env: DevEnv,
    tmp_path: Path,
    prefix: str,
    app: str,
    inputs: list[Input],
    output: str,
    truth: collections.Counter[str],
    ready: Callable[[], bool] = lambda: True,
) -> None:
    """One instance of `app`, until `ready()`; then `inputs` flow while a second instance
    joins and the first is killed; `output` must then hold `truth`, exactly."""
    bootstrap = dev_env.bootstrap_servers
    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
    }
    group = f"{prefix}join-app-{app}"
    first = _instance(env, tmp_path, "first", app)
    instances = [first]
    try:
        first.wait_for_log(r"assigned \d+ partitions", 60)
        wait_until(ready, 60, "the instance ready", [first])
        producers = [i.producer(bootstrap) for i in inputs]
        for producer in producers:
            producer.start()
        time.sleep(3)
        # The scale-out: some tasks, and their state, move to a new instance.
        second = _instance(env, tmp_path, "second", app)
        instances.append(second)
        second.wait_for_log(r"assigned \d+ partitions", 60)
        time.sleep(3)
        # The kill cuts into work in flight: input still arrives, and the first
        # instance has committed some of it.
        assert all(p.is_alive() for p in producers)
        assert committed_total(bootstrap, group, inputs[0].topic, PARTITIONS) > 0
        first.kill()
        assert first.wait(10) == -9
        for producer in producers:
            producer.join(60)
            assert not producer.is_alive()

        def found() -> collections.Counter[str]:
            values = read_values(bootstrap, output, sum(truth.values()), 5)
            return collections.Counter(v.decode() for v in values if v is not None)

        wait_until(
            lambda: found() == truth,
            120,
            "every result exactly once",
            [second],
            lambda: _difference(found(), truth),
        )
        second.terminate()
        assert second.wait(30) == 0, second.log()
    finally:
        for instance in instances:
            instance.stop()


def test_stream_table_join_exact_across_scale_out_and_kill(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    prefix = f"join-{unique}."
    bootstrap = dev_env.bootstrap_servers
    create_topics(
        bootstrap, [f"{prefix}orders", f"{prefix}customers", f"{prefix}enriched"], PARTITIONS
    )
    # The table first, so that every order meets its final profile: profiles,
    # then tombstones for some of them.
    profiles = {f"c{i}": f"profile-{i}-{unique}" for i in range(CUSTOMERS)}
    table_keys = [*profiles, *(f"c{i}" for i in range(DELETED))]
    table_values = [*profiles.values(), *([None] * DELETED)]
    produce(
        bootstrap,
        f"{prefix}customers",
        [None if v is None else v.encode() for v in table_values],
        keys=[k.encode() for k in table_keys],
        timestamps=[NOW - 60_000] * len(table_keys),
    )
    for key in (f"c{i}" for i in range(DELETED)):
        del profiles[key]
    keys = [f"c{(i * 7) % ORDERING_CUSTOMERS}" for i in range(ORDERS)]
    orders = [f"order-{i}" for i in range(ORDERS)]
    truth = collections.Counter(
        f"{order}|{profiles.get(key)}" for key, order in zip(keys, orders, strict=True)
    )
    group = f"{prefix}join-app-stream-table"
    _exact_across_scale_out_and_kill(
        dev_env,
        tmp_path,
        prefix,
        "stream-table",
        [Input(f"{prefix}orders", keys, orders, [NOW - 59_000 + i for i in range(ORDERS)])],
        f"{prefix}enriched",
        truth,
        ready=lambda: (
            committed_total(bootstrap, group, f"{prefix}customers", PARTITIONS) == len(table_keys)
        ),
    )


def test_stream_stream_join_exact_across_scale_out_and_kill(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    """Impressions and clicks on the same ad within 10 s: each impression has one click
    2 s after it, and impressions of one ad are 25 s apart, so each pair joins once;
    the join's window stores move with their tasks (restored from their changelogs)."""
    prefix = f"join-{unique}."
    create_topics(
        dev_env.bootstrap_servers,
        [f"{prefix}impressions", f"{prefix}clicks", f"{prefix}attributed"],
        PARTITIONS,
    )
    pairs = ORDERS
    ads = [f"ad{i % ADS}" for i in range(pairs)]
    impressions = [NOW - pairs * SPACING_MS + i * SPACING_MS for i in range(pairs)]
    clicks = [t + CLICK_AFTER_MS for t in impressions]
    truth = collections.Counter(f"i{i}|c{i}" for i in range(pairs))
    _exact_across_scale_out_and_kill(
        dev_env,
        tmp_path,
        prefix,
        "stream-stream",
        [
            Input(f"{prefix}impressions", ads, [f"i{i}" for i in range(pairs)], impressions),
            Input(f"{prefix}clicks", ads, [f"c{i}" for i in range(pairs)], clicks),
        ],
        f"{prefix}attributed",
        truth,
    )


def _difference(found: collections.Counter[str], truth: collections.Counter[str]) -> str:
    missing = truth - found
    extra = found - truth
    return (
        f"{sum(found.values())} records for {sum(truth.values())}; "
        f"missing {sum(missing.values())} (e.g. {list(missing)[:3]}), "
        f"extra {sum(extra.values())} (e.g. {list(extra)[:3]})"
    )
