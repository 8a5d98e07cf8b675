"""Joins on the real broker: 4 partitions, two instances, a scale-out and a SIGKILL.

The join application (tests/integration/join_app.py) runs as separate
processes under exactly_once_v2. One instance starts alone; a second joins
while orders flow (its tasks, and the table's state, move to it); then the
first is killed with SIGKILL. What the output topic holds (read committed)
must equal the ground truth computed here from the input, record for record:
nothing lost, nothing twice, every order joined with the right profile.
"""

from __future__ import annotations

import collections
import threading
import time
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
RATE = 2_000  # about 12 s of orders: they span the scale-out and the kill


def _instance(env: dict[str, str], tmp_path: Path, name: str) -> ServiceProcess:
    # Each instance its own state directory, as on two machines.
    env = {**env, "TOPICFLOW_STATE_DIR": str(tmp_path / f"state-{name}")}
    return ServiceProcess(
        "python", env, tmp_path, name, args=("-m", "tests.integration.join_app", "stream-table")
    )


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
        timestamps=[1_000] * len(table_keys),
    )
    for key in (f"c{i}" for i in range(DELETED)):
        del profiles[key]
    orders = [(f"c{(i * 7) % ORDERING_CUSTOMERS}", f"order-{i}") for i in range(ORDERS)]
    truth = collections.Counter(f"{order}|{profiles.get(key)}" for key, order in orders)

    env = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "TOPICFLOW_PROCESSING_GUARANTEE": "exactly_once_v2",
        "TOPICFLOW_COMMIT_INTERVAL_MS": "500",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "6000",
    }
    first = _instance(env, tmp_path, "first")
    instances = [first]
    try:
        first.wait_for_log(r"assigned \d+ partitions", 60)
        group = f"{prefix}join-app-stream-table"
        wait_until(
            lambda: (
                committed_total(bootstrap, group, f"{prefix}customers", PARTITIONS)
                == len(table_keys)
            ),
            60,
            "the customers table read",
            [first],
        )
        producer = threading.Thread(
            target=produce,
            args=(bootstrap, f"{prefix}orders", [o.encode() for _, o in orders]),
            kwargs={
                "rate": RATE,
                "keys": [k.encode() for k, _ in orders],
                "timestamps": [2_000 + i for i in range(ORDERS)],
            },
        )
        producer.start()
        time.sleep(3)
        # The scale-out: some tasks, and the table's state, move to a new instance.
        second = _instance(env, tmp_path, "second")
        instances.append(second)
        second.wait_for_log(r"assigned \d+ partitions", 60)
        time.sleep(3)
        # The kill cuts into work in flight: orders still arrive, and the first
        # instance has committed some of them.
        assert producer.is_alive()
        assert committed_total(bootstrap, group, f"{prefix}orders", PARTITIONS) > 0
        first.kill()
        assert first.wait(10) == -9
        producer.join(60)
        assert not producer.is_alive()

        def output() -> collections.Counter[str]:
            values = read_values(bootstrap, f"{prefix}enriched", len(orders), 5)
            return collections.Counter(v.decode() for v in values if v is not None)

        wait_until(
            lambda: output() == truth,
            120,
            "every order joined exactly once",
            [second],
            lambda: _difference(output(), truth),
        )
        second.terminate()
        assert second.wait(30) == 0, second.log()
    finally:
        for instance in instances:
            instance.stop()


def _difference(found: collections.Counter[str], truth: collections.Counter[str]) -> str:
    missing = truth - found
    extra = found - truth
    return (
        f"{sum(found.values())} records for {sum(truth.values())}; "
        f"missing {sum(missing.values())} (e.g. {list(missing)[:3]}), "
        f"extra {sum(extra.values())} (e.g. {list(extra)[:3]})"
    )
