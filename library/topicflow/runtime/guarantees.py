"""What each processing guarantee commits, and what it keeps after a failed commit.

- at-least-once: offsets alone; tasks revoked without a commit are kept
  (suspended), since redoing their records only repeats output.
- idempotent state (`idempotent_state=True`, runtime/replay.py): each
  partition's offset carries its task's table of origins; a task revoked
  without a commit is closed, so that whoever gets it restores stores that
  a replay meets with their stamps, not stores that already hold it.
- exactly-once (`exactly_once_v2`, runtime/transactions.py): offsets commit in
  the transaction; a task revoked without a commit is closed, since its stores
  hold changes the abort undid.
"""

from __future__ import annotations

from confluent_kafka import TopicPartition

from topicflow.config import StreamsConfig
from topicflow.runtime.source_route import SourceRoute


class AtLeastOnce:
    name = "at_least_once"
    # Whether tasks revoked without a commit may be kept (suspended) for reuse.
    keeps_uncommitted_tasks = True

    def offsets(self, routes: list[SourceRoute]) -> list[TopicPartition]:
        """What to commit: each processed partition's next offset to read."""
        return [TopicPartition(r.topic, r.partition, r.position) for r in routes]


class IdempotentState(AtLeastOnce):
    name = "idempotent_state"
    keeps_uncommitted_tasks = False

    def offsets(self, routes: list[SourceRoute]) -> list[TopicPartition]:
        # A task's table of origins commits with each of its partitions' offsets.
        encoded = {}
        for route in routes:
            if route.task.id not in encoded and route.task.origins is not None:
                encoded[route.task.id] = route.task.origins.encode()
        return [
            TopicPartition(r.topic, r.partition, r.position, encoded.get(r.task.id)) for r in routes
        ]


class ExactlyOnce(AtLeastOnce):
    name = "exactly_once_v2"
    keeps_uncommitted_tasks = False


def guarantee_of(config: StreamsConfig) -> AtLeastOnce:
    if config.exactly_once:
        return ExactlyOnce()
    if config.stamps_replays:
        return IdempotentState()
    return AtLeastOnce()
