"""Static membership: a restarting instance gets its partitions back without a rebalance."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.integration.kafka_tools import ServiceProcess, create_topics, dead_letter_topics
from topicflow.config import StreamsConfig
from topicflow_dev import DevEnv


def test_the_dyno_name_becomes_the_static_member_id() -> None:
    env = {"TOPICFLOW_STATIC_MEMBERSHIP": "true", "DYNO": "aggregator_worker.2"}
    assert StreamsConfig.from_env("a-app", env).group_instance_id == "aggregator_worker.2"


def test_a_quick_restart_does_not_move_the_other_members_partitions(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    prefix = f"static-{unique}."
    create_topics(
        dev_env.bootstrap_servers,
        [f"{prefix}textlines", f"{prefix}words", *dead_letter_topics(prefix)],
        4,
    )
    base = {
        "KAFKA_URL": dev_env.kafka_url,
        "KAFKA_PREFIX": prefix,
        "TOPICFLOW_STATIC_MEMBERSHIP": "true",
        "TOPICFLOW_SESSION_TIMEOUT_MS": "20000",
    }
    first = ServiceProcess("text-processor", {**base, "DYNO": "worker.1"}, tmp_path, "first")
    second = ServiceProcess("text-processor", {**base, "DYNO": "worker.2"}, tmp_path, "second")
    processes = [first, second]
    try:
        second.wait_for_log(r"assigned 2 partitions", 30)
        first.wait_for_log(r"assigned 2 partitions", 30)
        assigned_before = len(re.findall(r"assigned", second.log()))
        first_tasks = re.findall(r"running tasks (.*)", first.log())[-1]

        first.terminate()  # a dyno restart: SIGTERM, then the same DYNO comes back
        assert first.wait(30) == 0, first.log()
        again = ServiceProcess("text-processor", {**base, "DYNO": "worker.1"}, tmp_path, "again")
        processes.append(again)
        again.wait_for_log(r"assigned 2 partitions", 30)
        time.sleep(3)  # a rebalance would reach the other member within a heartbeat
        # The static member left without leaving the group, and came back as itself:
        # the other member was never revoked, and the partitions are the same.
        assert len(re.findall(r"assigned", second.log())) == assigned_before, second.log()
        assert re.findall(r"running tasks (.*)", again.log())[-1] == first_tasks
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.stop()
