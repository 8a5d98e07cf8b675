"""Exactly-once: one Kafka transaction per commit interval and stream worker.

Under `processing_guarantee="exactly_once_v2"` everything a worker produces
between two commits (output, repartition and changelog records) and the input
offsets it consumed commit together or not at all (Kafka's KIP-447 model, as
Kafka Streams' EOS v2: one transactional producer per stream thread, fenced by
the consumer group's generation). Readers use `isolation.level=read_committed`,
so records of an aborted transaction are never seen, and a worker killed
mid-interval leaves nothing that its successor would count twice.

External systems (PostgreSQL, webhooks) are outside the transaction: they are
written at least once, before the transaction commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from topicflow.errors import ConfigError, StreamsException
from topicflow.runtime.commit import FLUSH_TIMEOUT_S, CommitCycle

log = logging.getLogger(__name__)

TRANSACTION_TIMEOUT_S = 30.0

# Errors by which a broker says "transactions are not for you" (Heroku's plans).
_REFUSED = {
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
}


class TransactionAborted(StreamsException):
    """The transaction was aborted: the worker must redo its uncommitted work."""


def transactional_id(application_id: str, worker_index: int, instance: str | None = None) -> str:
    """`{application_id}-{instance}-{worker}`: Kafka Streams' EOS v2 layout, prefixed by the
    application id so one prefixed ACL covers every instance."""
    return f"{application_id}-{instance or uuid.uuid4().hex[:12]}-{worker_index}"


def refused_transactions(error: KafkaException) -> ConfigError | None:
    """A one-line ConfigError when the broker refuses transactions, else None."""
    kafka_error = error.args[0] if error.args else None
    if kafka_error is not None and kafka_error.code() in _REFUSED:
        return ConfigError(
            "processing_guarantee='exactly_once_v2' needs Kafka transactions, and the broker "
            f"refused them ({kafka_error.str()}); Apache Kafka on Heroku grants no "
            "transactional ACLs: use processing_guarantee='at_least_once'"
        )
    return None


class Transactions:
    """The transactional side of one worker's producer."""

    def __init__(self, producer: Any, consumer: Any) -> None:
        self._producer = producer
        self._consumer = consumer
        self.open = False

    def start(self) -> None:
        """Register the transactional id (fencing any zombie with it) and open a transaction."""
        try:
            self._producer.init_transactions(TRANSACTION_TIMEOUT_S)
        except KafkaException as error:
            refused = refused_transactions(error)
            if refused is not None:
                raise refused from None
            raise StreamsException(f"could not start transactions: {error}") from None
        self.begin()

    def begin(self) -> None:
        self._producer.begin_transaction()
        self.open = True

    def commit(self, offsets: list[Any]) -> None:
        """Commit the offsets with everything produced since `begin`, then open the next."""
        try:
            if offsets:
                self._producer.send_offsets_to_transaction(
                    offsets, self._consumer.consumer_group_metadata(), TRANSACTION_TIMEOUT_S
                )
            self._producer.commit_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as error:
            kafka_error = error.args[0]
            if kafka_error.txn_requires_abort():
                self.abort()
                raise TransactionAborted(
                    f"transaction aborted ({kafka_error.str()}); redoing uncommitted work"
                ) from None
            if kafka_error.retriable():
                # The outcome is unknown but the transaction is still ours: retrying
                # the commit is safe (librdkafka resumes it).
                self._producer.commit_transaction(TRANSACTION_TIMEOUT_S)
            else:
                self.open = False
                raise StreamsException(
                    f"transaction failed and cannot be aborted ({kafka_error.str()}); "
                    "the worker was fenced by a newer instance"
                ) from None
        self.begin()

    def abort(self) -> None:
        if not self.open:
            return
        self.open = False
        try:
            self._producer.abort_transaction(TRANSACTION_TIMEOUT_S)
        except KafkaException as error:
            log.warning("aborting the transaction failed: %s", error)


class TransactionalCommit(CommitCycle):
    """Exactly-once: the outputs, changelogs and input offsets commit as one transaction.

    An aborted transaction leaves the tasks' stores ahead of what counts:
    `redo` rebuilds the tasks from their (committed) changelogs and rewinds
    the input to the committed offsets.
    """

    def __init__(self, *args: Any, transactions: Transactions, redo: Callable[[], None]) -> None:
        super().__init__(*args)
        self.transactions = transactions
        self._redo = redo

    def _commit_offsets(self, offsets: list[TopicPartition]) -> bool:
        try:
            self._collector.flush(FLUSH_TIMEOUT_S)
            self.transactions.commit(offsets)
        except (TransactionAborted, StreamsException) as error:
            if isinstance(error, TransactionAborted) or self.transactions.open:
                self.transactions.abort()
                log.warning("%s: %s", self._name, error)
                self._redo()
                if not self.transactions.open:
                    self.transactions.begin()
                return False
            raise
        self._metrics.records_produced = self._collector.sent
        self._metrics.commits += 1
        self.resume_if_paused()
        return True
