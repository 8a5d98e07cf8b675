"""Consumer-group coordination: membership, the range assignor and the eager handshake.

Pure bookkeeping: the broker calls these methods with its lock held and runs the
members' rebalance callbacks on their own threads. A rebalance (eager protocol)
goes through two phases: every member that owns partitions revokes them all
(runs `on_revoke`, then acknowledges), and only when no member owns anything is
the new assignment computed and handed out, so no partition is ever read by two
members at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["Group", "Member", "range_assign"]

TopicPartitionKey = tuple[str, int]


class Member:
    """One consumer's membership of a group, as the coordinator sees it."""

    __slots__ = ("generation", "member_id", "owned", "topics")

    def __init__(self, member_id: str, topics: Sequence[str]) -> None:
        self.member_id = member_id
        self.topics: tuple[str, ...] = tuple(topics)
        # Partitions handed to this member and not yet revoked.
        self.owned: frozenset[TopicPartitionKey] = frozenset()
        # Generation whose assignment this member has taken; -1: none yet.
        self.generation = -1


class Group:
    """One consumer group: its members, the current generation and committed offsets."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.members: dict[str, Member] = {}
        self.generation = 0
        # True once the current generation's assignment is computed.
        self.stable = True
        self.assignments: dict[str, list[TopicPartitionKey]] = {}
        # Members that must revoke what they own before the generation can complete.
        self.pending: set[str] = set()
        self.committed: dict[TopicPartitionKey, int] = {}
        # The metadata committed with an offset, where one was given.
        self.committed_metadata: dict[TopicPartitionKey, str] = {}

    def commit(
        self, entries: Sequence[tuple[str, int, int]], metadata: Mapping[TopicPartitionKey, str]
    ) -> None:
        for topic, partition, offset in entries:
            key = (topic, partition)
            self.committed[key] = offset
            given = metadata.get(key)
            if given:
                self.committed_metadata[key] = given
            else:
                self.committed_metadata.pop(key, None)

    def subscribes_to(self, topic: str) -> bool:
        return any(topic in m.topics for m in self.members.values())

    def join(self, member: Member, partitions: Mapping[str, Sequence[object]]) -> None:
        self.members[member.member_id] = member
        self.rebalance(partitions)

    def leave(self, member: Member, partitions: Mapping[str, Sequence[object]]) -> None:
        if self.members.pop(member.member_id, None) is None:
            return
        member.owned = frozenset()
        self.pending.discard(member.member_id)
        self.rebalance(partitions)

    def rebalance(self, partitions: Mapping[str, Sequence[object]]) -> None:
        """Start a new generation: owners must revoke before anyone gets the new assignment."""
        self.generation += 1
        self.stable = False
        self.assignments = {}
        self.pending = {mid for mid, m in self.members.items() if m.owned}
        if not self.pending:
            self._complete(partitions)

    def must_revoke(self, member: Member) -> bool:
        return member.member_id in self.pending

    def revoked(self, member: Member, partitions: Mapping[str, Sequence[object]]) -> None:
        """`member` has run its revocation: it owns nothing any more."""
        member.owned = frozenset()
        self.pending.discard(member.member_id)
        if not self.pending and not self.stable:
            self._complete(partitions)

    def take_assignment(self, member: Member) -> list[TopicPartitionKey] | None:
        """The member's new assignment, once per completed generation; else None."""
        if not self.stable or member.generation == self.generation:
            return None
        if member.member_id not in self.members:
            return None
        assigned = self.assignments.get(member.member_id, [])
        member.generation = self.generation
        member.owned = frozenset(assigned)
        return assigned

    def forget_topic(self, topic: str) -> None:
        """Drop committed offsets of a deleted topic, so a re-created one starts afresh."""
        for key in [k for k in self.committed if k[0] == topic]:
            del self.committed[key]
            self.committed_metadata.pop(key, None)

    def _complete(self, partitions: Mapping[str, Sequence[object]]) -> None:
        counts = {
            t: len(partitions[t])
            for m in self.members.values()
            for t in m.topics
            if t in partitions
        }
        self.assignments = range_assign({mid: m.topics for mid, m in self.members.items()}, counts)
        self.stable = True


def range_assign(
    subscriptions: Mapping[str, Sequence[str]], partition_counts: Mapping[str, int]
) -> dict[str, list[TopicPartitionKey]]:
    """Kafka's RangeAssignor: per topic, contiguous partition ranges over sorted member ids.

    Members subscribed to co-partitioned topics therefore get the same partition
    numbers of each. Topics absent from `partition_counts` (not created yet) are skipped.
    """
    result: dict[str, list[TopicPartitionKey]] = {mid: [] for mid in subscriptions}
    members_of: dict[str, list[str]] = {}
    for mid in sorted(subscriptions):
        for topic in dict.fromkeys(subscriptions[mid]):
            members_of.setdefault(topic, []).append(mid)
    for topic in sorted(members_of):
        count = partition_counts.get(topic, 0)
        members = members_of[topic]
        per_member, extra = divmod(count, len(members))
        for i, mid in enumerate(members):
            start = per_member * i + min(i, extra)
            length = per_member + (1 if i < extra else 0)
            result[mid].extend((topic, p) for p in range(start, start + length))
    return result
