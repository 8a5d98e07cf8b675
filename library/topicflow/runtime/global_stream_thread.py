"""GlobalStreamThread: loads an instance's global stores, then keeps them up to date.

Kafka Streams' GlobalStreamThread. One per KafkaStreams instance (and so one per
worker process: each is its own instance), with its own consumer, which joins
no consumer group and commits nothing: it is assigned every partition of
every global topic. `load()` runs in `KafkaStreams.start()`, before any stream
worker: it reads each partition from the store's checkpoint (persistent
stores) or from the start, up to the end offsets captured when it began. Then
`start()` runs a thread that applies what the topics receive, a batch at a
time, while the stream workers read the stores (state/global_state.py).

A record that cannot be deserialized goes to the deserialization exception
handler: skipped and counted, or, under log_and_fail, the thread stops and the
instance goes to ERROR (during `load()`, start() raises).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from topicflow.brokers.base import OFFSET_BEGINNING, Broker, Consumer
from topicflow.config import StreamsConfig
from topicflow.errors import StreamsException, TopicflowError
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.processing import WorkerMetrics
from topicflow.runtime.worker_clients import restore_consumer_config
from topicflow.state.global_state import GlobalKeyValueStore, GlobalStateManager, Offsets
from topicflow.state.restore import ChangelogReader, TaskRestore, watermarks
from topicflow.topology.topology import Topology

log = logging.getLogger(__name__)

# Records applied per consume() once loaded: updates are small, and the loop
# must come back to its stop flag and its checkpoint often.
UPDATE_BATCH = 1_000
# How long one read waits for updates.
UPDATE_WAIT_S = 0.1
# Consumer errors are logged at most this often (a broker away reports many).
LOG_EVERY_S = 30.0


class GlobalStreamThread:
    def __init__(
        self,
        topology: Topology,
        config: StreamsConfig,
        broker: Broker,
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self.name = f"{config.application_id}-GlobalStreamThread"
        self.metrics = WorkerMetrics()
        self.error: BaseException | None = None
        self._config = config
        self._broker = broker
        self._on_failure = on_failure
        # No producer: a skipped record is counted and logged, not dead-lettered.
        self.errors = ErrorHandling(config, self.metrics)
        self._state = GlobalStateManager(topology, config, self.metrics, self._bad_record)
        self._topics = sorted({g.topic for g in topology.global_stores.values()})
        self._consumer: Consumer | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._last_log = 0.0
        # The next offset to read per partition, as of the last checkpoint.
        self._positions: Offsets = {}

    @property
    def stores(self) -> dict[str, GlobalKeyValueStore]:
        return self._state.stores

    def _bad_record(self, message: Any, error: Exception) -> None:
        self.errors.deserialization_failed("global", message, error, "deserialization")

    # -- load ------------------------------------------------------------------------

    def load(self, timeout: float) -> None:
        """Read every global topic up to its end offsets as of now (blocking)."""
        config = self._config
        client_id = f"{config.base_client_config()['client.id']}-global-consumer"
        consumer_config = restore_consumer_config(config, client_id)
        if config.exactly_once:
            # As Kafka Streams' global consumer: under exactly-once, no record of an
            # aborted transaction reaches the store.
            consumer_config["isolation.level"] = "read_committed"
        self._consumer = consumer = self._broker.consumer(consumer_config)
        counts = self._broker.admin().partition_counts(self._topics, timeout)
        missing = [t for t in self._topics if t not in counts]
        if missing:
            raise StreamsException(f"global topics missing: {', '.join(missing)}")
        partitions = [(t, p) for t in self._topics for p in range(counts[t])]
        started = time.monotonic()
        start, end = self._plan(consumer, partitions)
        reader = ChangelogReader(consumer)
        restores = []
        for topic, partition in partitions:
            first = start[(topic, partition)]
            restore = TaskRestore(
                f"global-{topic}-{partition}",
                partition,
                {topic: self._state.appliers[topic]},
                {topic: first},
                {topic: end[(topic, partition)]} if (topic, partition) in end else {},
                lambda _restore: None,
            )
            reader.add(restore)
            restores.append(((topic, partition), restore))
        reader.read_all()
        self.metrics.restored_records += sum(restore.applied for _tp, restore in restores)
        positions = {tp: restore.positions[tp[0]] for tp, restore in restores}
        consumer.assign([TopicPartition(t, p, offset) for (t, p), offset in positions.items()])
        self._positions = positions
        self._state.checkpoint(positions)
        log.info(
            "%s loaded global topics %s in %.2f s",
            self.name,
            ", ".join(self._topics),
            time.monotonic() - started,
        )

    def _plan(
        self, consumer: Consumer, partitions: list[tuple[str, int]]
    ) -> tuple[Offsets, Offsets]:
        """Per partition: where loading starts (the checkpoint, if the topic still holds
        it, else the start) and the end offset it reads to (absent: nothing to read)."""
        bounds = {tp: watermarks(consumer, TopicPartition(*tp)) for tp in partitions}
        checkpointed = self._state.checkpointed
        if any(
            not low <= checkpointed[tp] <= high
            for tp, (low, high) in bounds.items()
            if tp in checkpointed
        ):
            log.info("%s: the global checkpoint is out of range; reloading", self.name)
            self._state.wipe()
            checkpointed = {}
        start: Offsets = {}
        end: Offsets = {}
        for tp, (low, high) in bounds.items():
            first = checkpointed.get(tp)
            if first is None:
                first = OFFSET_BEGINNING if low == 0 else low
            start[tp] = first
            if high > max(first, low):
                end[tp] = high
        return start, end

    # -- updates ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def shutdown(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None) -> bool:
        if self._thread.ident is None:  # never started
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        interval = self._config.commit_interval_ms / 1000
        next_checkpoint = time.monotonic() + interval
        clean = False
        try:
            while not self._stop.is_set():
                messages = consumer.consume(UPDATE_BATCH, UPDATE_WAIT_S)
                if messages:
                    if any(m.error() is not None for m in messages):
                        messages = self._without_errors(messages)
                    self._state.apply(messages)
                if time.monotonic() >= next_checkpoint:
                    self._checkpoint()
                    next_checkpoint = time.monotonic() + interval
            clean = True
        except BaseException as error:
            self.error = error
            log.error(
                "%s stopped: %s", self.name, error, exc_info=not isinstance(error, TopicflowError)
            )
            self._on_failure(error)
        finally:
            # The stores stay open: the stream workers may still read them until
            # the instance closes them (close_stores).
            self._close_consumer(clean)

    def _checkpoint(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        for tp in consumer.position(consumer.assignment()):
            if tp.offset >= 0:  # else nothing consumed yet: still where loading left it
                self._positions[(tp.topic, tp.partition)] = tp.offset
        self._state.checkpoint(self._positions)

    def _without_errors(self, messages: list[Any]) -> list[Any]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                records.append(message)
            elif error.fatal():
                raise StreamsException(f"global consumer: {error.str()}")
            else:  # transient (a broker away): librdkafka retries
                self.metrics.consumer_errors += 1
                now = time.monotonic()
                if now - self._last_log >= LOG_EVERY_S:
                    self._last_log = now
                    log.warning("%s: %s", self.name, error.str())
        return records

    def _close_consumer(self, clean: bool) -> None:
        """Checkpoint (after a clean stop), then close the consumer."""
        consumer = self._consumer
        if consumer is None:
            return
        try:
            if clean:
                self._checkpoint()
        finally:
            self._consumer = None
            consumer.close()

    def close_stores(self) -> None:
        """Once the stream workers are done with them (or loading failed)."""
        self._close_consumer(clean=False)
        self._state.close()
