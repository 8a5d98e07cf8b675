"""The embedded consumer's side of the group protocol: membership and assignment.

A consumer either subscribes (joins its group) or is assigned partitions by
hand with `assign()`, outside any group (e.g. to restore state stores from
changelogs), as in Kafka; mixing the two raises KafkaException(_STATE).

Group membership follows the eager protocol with the range assignor (see
`group.py`, the broker's side). As with librdkafka, a member learns of a
rebalance inside its own `consume()`, which calls `_revoke` or `_take` here:
`on_revoke` then `on_assign` run there, on the member's thread, and never with
the broker's lock held, so callbacks may commit.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.brokers.base import OFFSET_INVALID, OFFSET_STORED
from topicflow.brokers.embedded.consumer_offsets import ConsumerOffsets
from topicflow.brokers.embedded.group import Member, TopicPartitionKey
from topicflow.brokers.embedded.subscription_state import (
    RebalanceCallback,
    TopicPartitionState,
    state_error,
)

__all__ = ["ConsumerCoordinator"]


class ConsumerCoordinator(ConsumerOffsets):
    """Joining and leaving the group, assign(), and the rebalance callbacks."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Join the group (or change the subscription); the others rebalance."""
        self._check_open()
        if isinstance(topics, str) or not all(isinstance(t, str) for t in topics):
            raise TypeError("subscribe() expects a list of topic names")
        if self._manual:
            raise state_error(
                "subscribe() on a consumer with partitions assigned by assign(): "
                "a consumer either subscribes or assigns; unassign() first"
            )
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        broker = self._broker
        with broker._lock:
            if self._member is None:
                group = broker._group_locked(self._group_id)
                member = Member(broker._new_member_id_locked(self._client_id), topics)
                self._group, self._member = group, member
                group.join(member, broker._topics)
            elif self._group is not None and tuple(topics) != self._member.topics:
                self._member.topics = tuple(topics)
                self._group.rebalance(broker._topics)
            else:
                return
            broker._wake_all_locked()

    def unsubscribe(self) -> None:
        """Leave the group, revoking what this member owns."""
        self._check_open()
        if self._member is not None:
            self._revoke(leaving=True)

    def consumer_group_metadata(self) -> str:
        """The group this consumer belongs to. The embedded broker has no transactions,
        so nothing consumes it; it exists to match confluent-kafka's Consumer."""
        return self._group_id

    def memberid(self) -> str | None:
        return self._member.member_id if self._member is not None else None

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions, replacing any previous assign(), outside the group.

        Each starts at its offset: a concrete one, OFFSET_BEGINNING (the log
        start), OFFSET_END, or OFFSET_STORED/OFFSET_INVALID (the group's committed
        offset); none committed, or out of range: auto.offset.reset. Partitions
        that do not exist are assigned but never return records.

        Inside on_assign (subscribed), it sets the start offsets of the group's
        assignment instead. Elsewhere on a subscribed consumer it raises
        KafkaException(_STATE): a consumer either subscribes or assigns.
        """
        self._check_open()
        if not isinstance(partitions, list):
            raise TypeError("assign() expects a list of TopicPartition")
        if self._in_callback == "assign":
            self._assign_offsets = {(tp.topic, tp.partition): tp.offset for tp in partitions}
            return
        if self._member is not None or self._in_callback:
            raise state_error(
                "assign() on a subscribed consumer (allowed only inside on_assign): "
                "a consumer either subscribes or assigns; unsubscribe() first"
            )
        keys = [(tp.topic, tp.partition) for tp in partitions]
        if len(set(keys)) != len(keys):
            raise KafkaException(
                KafkaError(KafkaError._INVALID_ARG, "assign(): duplicate partitions")
            )
        broker = self._broker
        with broker._lock:
            group = broker._groups.get(self._group_id)
            committed = group.committed if group is not None else {}
            fetches = []
            for key, tp in zip(keys, partitions, strict=True):
                parts = broker._topics.get(key[0])
                if parts is None or not 0 <= key[1] < len(parts):
                    continue
                log = parts[key[1]]
                offset = tp.offset
                if offset in (OFFSET_INVALID, OFFSET_STORED):
                    offset = committed.get(key, OFFSET_INVALID)
                fetches.append(TopicPartitionState(key, log, self._resolve(offset, log)))
            self._assigned = keys
            self._set_fetches_locked(fetches)
            self._manual = bool(keys)
            # A consume() blocked in another thread waits for the old partitions.
            self._wakeup.notify_all()

    def unassign(self) -> None:
        """Drop the partitions assigned by assign().

        Inside on_revoke it is what happens anyway; elsewhere on a subscribed
        consumer it raises KafkaException(_STATE): use unsubscribe().
        """
        self._check_open()
        if self._in_callback == "revoke":
            return
        if self._member is not None or self._in_callback:
            raise state_error(
                "unassign() on a subscribed consumer (allowed only inside on_revoke): "
                "unsubscribe() leaves the group"
            )
        self._unassign()

    def _unassign(self) -> None:
        with self._broker._lock:
            # As librdkafka: auto-commit what was consumed before the partitions go.
            if self._auto_commit and self._fetches:
                self._commit_locked(None)
            self._assigned = []
            self._set_fetches_locked([])
            self._manual = False
            self._wakeup.notify_all()

    # -- rebalance -------------------------------------------------------------------------

    def _revoke(self, leaving: bool) -> None:
        """Run on_revoke for what this member owns, then give it up (and maybe leave)."""
        broker = self._broker
        member, group = self._member, self._group
        assert member is not None and group is not None
        with broker._lock:
            owned = sorted(member.owned)
        self._in_callback = "revoke"
        try:
            if owned and self._on_revoke is not None:
                self._on_revoke(self, [TopicPartition(t, p) for t, p in owned])
        finally:
            self._in_callback = ""
            with broker._lock:
                # As librdkafka: auto-commit what was consumed before the partitions go.
                if self._auto_commit:
                    self._commit_locked(None)
                self._assigned = []
                self._set_fetches_locked([])
                if leaving:
                    group.leave(member, broker._topics)
                    self._member = self._group = None
                else:
                    group.revoked(member, broker._topics)
                broker._wake_all_locked()

    def _take(self, assigned: list[TopicPartitionKey]) -> None:
        """Run on_assign for a new assignment, then start fetching it."""
        self._in_callback = "assign"
        self._assign_offsets = None
        try:
            if self._on_assign is not None:
                self._on_assign(self, [TopicPartition(t, p) for t, p in assigned])
        finally:
            self._in_callback = ""
            overrides: dict[TopicPartitionKey, int] = self._assign_offsets or {}
            self._assign_offsets = None
            with self._broker._lock:
                if self._member is not None:
                    self._start_locked(assigned, overrides)

    def _start_locked(
        self, assigned: list[TopicPartitionKey], overrides: dict[TopicPartitionKey, int]
    ) -> None:
        """Fetch positions: an offset given to assign(), else the committed one, else the reset."""
        assert self._group is not None
        committed = self._group.committed
        topics = self._broker._topics
        fetches = []
        for key in assigned:
            parts = topics.get(key[0])
            if parts is None or key[1] >= len(parts):
                continue  # deleted meanwhile: a rebalance is on its way
            log = parts[key[1]]
            offset = overrides.get(key, OFFSET_INVALID)
            if offset in (OFFSET_INVALID, OFFSET_STORED):
                offset = committed.get(key, OFFSET_INVALID)
            fetches.append(TopicPartitionState(key, log, self._resolve(offset, log)))
        self._assigned = list(assigned)
        self._set_fetches_locked(fetches)
