"""KafkaStreams: runs a topology with `num_stream_threads` stream workers.

    streams = KafkaStreams(builder.build(), config)
    streams.start()
    ...
    streams.close()

`start()` checks, before any worker runs, what would otherwise fail later and
less clearly: the broker answers, the source topics exist, the internal topics
exist or can be created (`startup_checks.py`, `internal_topics.py`). The
global stores, if any, are then loaded whole (`global_stream_thread.py`), and
kept up to date by a thread of their own. Then each worker joins the consumer
group `application_id` and gets tasks as the group assigns partitions.

States, as in Kafka Streams:

    CREATED -> REBALANCING <-> RUNNING -> PENDING_SHUTDOWN -> NOT_RUNNING
                         \\-> ERROR (a worker died) -> PENDING_SHUTDOWN -> NOT_RUNNING
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.brokers.base import Broker
from topicflow.config import StreamsConfig
from topicflow.errors import StreamsException
from topicflow.runtime.global_stream_thread import GlobalStreamThread
from topicflow.runtime.internal_topics import fit_producer_to_topics, prepare_topics
from topicflow.runtime.processing import WorkerMetrics
from topicflow.runtime.startup_checks import (
    check_assignment_strategy,
    check_idempotent_state,
    check_transactions,
)
from topicflow.runtime.stream_worker import StreamWorker, WorkerState

if TYPE_CHECKING:
    from topicflow.runtime.worker_processes import WorkerProcesses
from topicflow.topology.topology import Topology

log = logging.getLogger(__name__)


# librdkafka's default message.max.bytes: the largest batch a producer sends.
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000


class State(enum.Enum):
    CREATED = "CREATED"
    REBALANCING = "REBALANCING"
    RUNNING = "RUNNING"
    PENDING_SHUTDOWN = "PENDING_SHUTDOWN"
    NOT_RUNNING = "NOT_RUNNING"
    ERROR = "ERROR"


StateListener = Callable[[State, State], None]


def broker_for(config: StreamsConfig) -> Broker:
    """Apache Kafka when bootstrap servers are configured, else the embedded broker."""
    if config.bootstrap_servers:
        from topicflow.brokers.kafka import KafkaBroker

        return KafkaBroker(config.base_client_config())
    from topicflow.brokers.embedded import default_broker

    return default_broker()


class KafkaStreams:
    def __init__(self, topology: Topology, config: StreamsConfig, broker: Broker | None = None):
        topology.validate()
        self._topology = topology
        self._config = config
        self._broker = broker
        self._state = State.CREATED
        self._lock = threading.RLock()
        self._listeners: list[StateListener] = []
        self._workers: list[StreamWorker] = []
        self._stopped = threading.Event()
        # Names this instance's transactional ids (exactly-once), one per worker.
        self._instance = uuid.uuid4().hex[:12]
        self._processes: WorkerProcesses | None = None
        self._global: GlobalStreamThread | None = None

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def config(self) -> StreamsConfig:
        return self._config

    # -- state -------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    def set_state_listener(self, listener: StateListener) -> None:
        """Called with (new_state, old_state) on every transition, from the thread causing it."""
        self._listeners.append(listener)

    def _transition(self, new: State) -> None:
        with self._lock:
            old = self._state
            if old == new or old in (State.NOT_RUNNING,):
                return
            if old is State.ERROR and new not in (State.PENDING_SHUTDOWN, State.NOT_RUNNING):
                return
            if old is State.PENDING_SHUTDOWN and new not in (State.NOT_RUNNING,):
                return
            self._state = new
        log.info("%s: state %s -> %s", self._config.application_id, old.value, new.value)
        for listener in self._listeners:
            listener(new, old)

    def _on_worker_state(self, worker: StreamWorker, state: WorkerState) -> None:
        if state is WorkerState.DEAD and worker.error is not None:
            self._transition(State.ERROR)
            self._stopped.set()
            return
        states = {w.state for w in self._workers if w.state is not WorkerState.DEAD}
        if states and states == {WorkerState.RUNNING}:
            self._transition(State.RUNNING)
        elif states & {WorkerState.STARTING, WorkerState.PARTITIONS_REVOKED}:
            self._transition(State.REBALANCING)

    # -- start -------------------------------------------------------------------

    def start(self) -> None:
        """Check the broker and topics, then start the workers. Raises TopicflowError."""
        with self._lock:
            if self._state is not State.CREATED:
                raise StreamsException(
                    f"start() called in state {self._state.value}; a KafkaStreams starts once"
                )
        if self._uses_worker_processes():
            self._start_worker_processes()
            return
        broker = self._broker or broker_for(self._config)
        self._broker = broker
        timeout = self._config.startup_timeout_ms / 1000
        broker.check_reachable(timeout)
        if self._config.exactly_once:
            check_transactions(self._config, broker)
        admin = broker.admin()
        subtopologies = self._topology.subtopologies()
        check_idempotent_state(self._config, subtopologies, self._topology.state_stores)
        check_assignment_strategy(self._config, subtopologies)
        # Zero set-up on the embedded broker: it makes the topics the demo needs.
        create_missing = broker.name == "embedded"
        global_subtopologies = self._topology.global_subtopologies()
        prepare_topics(
            admin,
            self._topology,
            subtopologies + global_subtopologies,
            self._config,
            create_missing,
            timeout,
        )
        self._config = fit_producer_to_topics(
            admin, self._topology, subtopologies, self._config, self.resolve_topic, timeout
        )
        self._transition(State.REBALANCING)
        global_stores = self._start_global_stream_thread(broker, timeout)
        self._workers = [
            StreamWorker(
                i + 1,
                subtopologies,
                self._config,
                broker,
                self.resolve_topic,
                self._on_worker_state,
                self._topology.state_stores,
                self._instance,
                global_stores,
            )
            for i in range(self._config.num_stream_threads)
        ]
        for worker in self._workers:
            worker.start()

    def _start_global_stream_thread(self, broker: Broker, timeout: float) -> dict[str, Any]:
        """Load the global stores to the ends of their topics as of now, then keep them
        up to date in their own thread: before any stream worker processes a record."""
        if not self._topology.global_stores:
            return {}

        def on_failure(_error: BaseException) -> None:
            self._transition(State.ERROR)
            self._stopped.set()

        self._global = GlobalStreamThread(self._topology, self._config, broker, on_failure)
        try:
            self._global.load(timeout)
        except BaseException:
            self._global.close_stores()
            self._global = None
            raise
        self._global.start()
        return self._global.stores

    # -- stream workers as processes (num_stream_threads > 1 on Kafka) ------------

    def _uses_worker_processes(self) -> bool:
        """Several workers on Apache Kafka run as processes, so that they use several cores.

        On the embedded broker (one process by nature) and with an explicit broker
        object they run as threads.
        """
        return (
            self._config.num_stream_threads > 1
            and self._broker is None
            and bool(self._config.bootstrap_servers)
        )

    def _start_worker_processes(self) -> None:
        from topicflow.runtime.worker_processes import WorkerProcesses

        def on_states(states: list[str]) -> None:
            if all(state == State.RUNNING.value for state in states):
                self._transition(State.RUNNING)
            elif any(state == State.REBALANCING.value for state in states):
                self._transition(State.REBALANCING)

        def on_failure(reason: str) -> None:
            log.error("%s: %s", self._config.application_id, reason)
            self._transition(State.ERROR)
            self._stopped.set()

        self._processes = WorkerProcesses(
            self._topology, self._config, on_states, on_failure, KafkaStreams
        )
        self._transition(State.REBALANCING)
        self._processes.start(self._config.startup_timeout_ms / 1000)

    def resolve_topic(self, topic: str) -> str:
        """Internal topics carry the application id (and so the Kafka prefix) in their name."""
        if topic in self._topology.internal_topics:
            return self._topology.internal_topics[topic].full_name(self._config.application_id)
        return topic

    # -- close -------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Stop every worker after its current batch (commit, leave the group).

        Returns True if all stopped within `timeout` seconds (None: wait for ever).
        """
        with self._lock:
            if self._state is State.NOT_RUNNING:
                return True
        self._transition(State.PENDING_SHUTDOWN)
        if self._processes is not None:
            stopped = self._processes.close(timeout)
            if stopped:
                self._transition(State.NOT_RUNNING)
            self._stopped.set()
            return stopped
        for worker in self._workers:
            worker.shutdown()
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for worker in self._workers:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            stopped = worker.join(remaining) and stopped
        if self._global is not None:
            # After the workers, which read its stores to the end.
            self._global.shutdown()
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if self._global.join(remaining) and stopped:
                self._global.close_stores()
            else:
                stopped = False
        if stopped:
            self._transition(State.NOT_RUNNING)
        self._stopped.set()
        return stopped

    def wait_until_stopped(self, timeout: float | None = None) -> bool:
        """Block until close() or a worker failure; True if that happened within timeout."""
        return self._stopped.wait(timeout)

    # -- introspection -------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """The error a failed worker died of, if any."""
        if self._processes is not None and self._processes.error is not None:
            return StreamsException(self._processes.error)
        for worker in self._workers:
            if worker.error is not None:
                return worker.error
        if self._global is not None and self._global.error is not None:
            return self._global.error
        return None

    def metrics(self) -> dict[str, int]:
        if self._processes is not None:
            return self._processes.metrics()
        total = WorkerMetrics()
        for worker in self._workers:
            total.add(worker.metrics)
        if self._global is not None:
            total.add(self._global.metrics)
        return total.as_dict()

    def tasks(self) -> dict[str, list[str]]:
        """Task ids per worker name: which partitions this instance processes now."""
        if self._processes is not None:
            return self._processes.tasks()
        return {w.name: sorted(str(t) for t in w.tasks) for w in self._workers}

    def __enter__(self) -> KafkaStreams:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
