"""The per-record path alone: `process_batch` over a single-partition task.

    .venv/bin/python bench/process_batch.py                 # 200k records, best of 7
    .venv/bin/python bench/process_batch.py --records 500000 --repeat 9
    .venv/bin/python bench/process_batch.py --merge         # and a two-topic task

No broker and no threads: one StreamTask of a stateless topology (filter,
map_values, to) whose sink sends into a sender that drops, fed pre-built
messages through BatchProcessor.process_batch in batches of 1000, as a stream
worker feeds it. What it measures is the cost per record of the path every
record takes (route lookup, screen test, deserialization, record context,
nodes, serialization): run it before and after a change to that path.
Prints nanoseconds per record, the best of `--repeat` runs (the least disturbed
by other processes on the machine), in CPU time of the process.

With `--merge`, the same nodes below a source of two topics: each batch half
of one topic, half of the other, queued by the task's PartitionGroup and
released in timestamp order (runtime/partition_group.py), as the stream
worker does: what a join's or a merge's task pays for its order.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from topicflow import Serdes, StreamsBuilder, StreamsConfig
from topicflow.brokers.embedded.message import EmbeddedMessage
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.processing import BatchProcessor, WorkerMetrics
from topicflow.runtime.source_route import TaskId
from topicflow.runtime.task import StreamTask

BATCH = 1000


class DroppingSender:
    def send(self, *args: Any) -> None:
        pass

    def partition_count(self, topic: str) -> int:
        return 1


def run(records: int, repeat: int, merge: bool = False) -> float:
    config = StreamsConfig(
        application_id="bench-process-batch",
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
    )
    topics = ["in", "in2"] if merge else ["in"]
    builder = StreamsBuilder()
    builder.stream(topics).filter(lambda _k, v: v[0] != "x").map_values(str.upper).to("out")
    topology = builder.build()
    (sub,) = topology.subtopologies()
    metrics = WorkerMetrics()
    task = StreamTask(TaskId(0, 0), sub, config, DroppingSender(), lambda t: t, metrics=metrics)
    routes = {topic: {0: task.route(topic, 0)} for topic in topics}
    processor = BatchProcessor(config, metrics, ErrorHandling(config, metrics))
    groups = []
    if merge:
        from topicflow.runtime.partition_group import PartitionGroup

        def no_lag(topic: str, partition: int, fetched: int | None) -> int:
            return 0

        members = [routes[topic][0] for topic in topics]
        groups.append(PartitionGroup(members, 0, 10 * BATCH, no_lag, metrics))
    # Each batch: half of each topic, timestamps interleaved.
    messages = [
        EmbeddedMessage(
            topics[(i // (BATCH // 2)) % len(topics)],
            0,
            i,
            f"k{i % 100}".encode(),
            f"value {i}".encode(),
            i if not merge else (i % (BATCH // 2)) * 2 + (i // (BATCH // 2)) % 2,
            None,
        )
        for i in range(records)
    ]
    batches = [messages[i : i + BATCH] for i in range(0, records, BATCH)]
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for batch in batches:
            processor.process_batch(batch, routes)
            for group in groups:
                released = group.release(0)
                group.releasing = True
                processor.process_batch(released, routes)
                group.releasing = False
        best = min(best, time.process_time() - started)
    return best / records * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--merge", action="store_true", help="also a task reading two topics")
    args = parser.parse_args()
    ns = run(args.records, args.repeat)
    print(f"process_batch, single-partition stateless task: {ns:.0f} ns/record")
    if args.merge:
        ns = run(args.records, args.repeat, merge=True)
        print(f"process_batch, two-topic task (PartitionGroup): {ns:.0f} ns/record")


if __name__ == "__main__":
    main()
