"""KafkaStreams: runs a topology with `num_stream_threads` stream workers.

    streams = KafkaStreams(builder.build(), config)
    streams.start()
    ...
    streams.close()

`start()` checks, before any worker runs, what would otherwise fail later and
less clearly: the broker answers, the source topics exist, the internal topics
exist or can be created. Then each worker joins the consumer group
`application_id` and gets tasks as the group assigns partitions.

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
from typing import TYPE_CHECKING, Any, cast

from topicflow.brokers.base import Admin, Broker, TopicSpec, TransactionalProducer
from topicflow.config import StreamsConfig
from topicflow.errors import (
    BrokerUnavailable,
    ConfigError,
    MissingSourceTopics,
    StreamsException,
    TopicflowError,
)
from topicflow.runtime.processing import WorkerMetrics
from topicflow.runtime.stream_worker import StreamWorker, WorkerState

if TYPE_CHECKING:
    from topicflow.runtime.worker_processes import WorkerProcesses
from topicflow.topology.topology import SubTopology, Topology

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
            self._check_transactions(broker)
        admin = broker.admin()
        subtopologies = self._topology.subtopologies()
        self._check_idempotent_state(subtopologies)
        self._check_assignment_strategy(subtopologies)
        self._prepare_topics(admin, subtopologies, timeout)
        self._fit_producer_to_topics(admin, subtopologies, timeout)
        self._transition(State.REBALANCING)
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
            )
            for i in range(self._config.num_stream_threads)
        ]
        for worker in self._workers:
            worker.start()

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

    def _check_assignment_strategy(self, subtopologies: list[SubTopology]) -> None:
        if self._config.partition_assignment_strategy != "cooperative-sticky":
            return
        for sub in subtopologies:
            if len(sub.source_topics) > 1:
                raise ConfigError(
                    "partition_assignment_strategy='cooperative-sticky' places each partition "
                    f"on its own, but sub-topology {sub.id} reads {', '.join(sub.source_topics)} "
                    "whose partitions must stay together in one task: use 'range'"
                )

    def _check_idempotent_state(self, subtopologies: list[SubTopology]) -> None:
        """A flush stamp is one input position: a stateful task must read one topic."""
        if not self._config.stamps_replays:
            return
        for sub in subtopologies:
            stateful = any(getattr(node, "stores", None) for node in sub.nodes)
            if stateful and len(sub.source_topics) > 1:
                raise ConfigError(
                    f"idempotent_state: sub-topology {sub.id} keeps state and reads "
                    f"{', '.join(sub.source_topics)}; idempotent state needs stateful "
                    "sub-topologies that read one topic (or use exactly_once_v2)"
                )

    def _check_transactions(self, broker: Broker) -> None:
        """Fail at start, in one line, where exactly-once cannot work."""
        if broker.name == "embedded":
            raise ConfigError(
                "processing_guarantee='exactly_once_v2' needs Apache Kafka's transactions; "
                "the embedded broker has none: set KAFKA_URL or use 'at_least_once'"
            )
        from confluent_kafka import KafkaException

        from topicflow.runtime.transactions import TRANSACTION_TIMEOUT_S, refused_transactions

        config = self._config.producer_client_config()
        config["transactional.id"] = f"{self._config.application_id}-startup-check"
        producer = cast(TransactionalProducer, broker.producer(config))
        try:
            producer.init_transactions(
                min(TRANSACTION_TIMEOUT_S, self._config.startup_timeout_ms / 1000)
            )
        except KafkaException as error:
            refused = refused_transactions(error)
            if refused is not None:
                raise refused from None
            raise BrokerUnavailable(f"cannot start Kafka transactions: {error}") from None

    def resolve_topic(self, topic: str) -> str:
        """Internal topics carry the application id (and so the Kafka prefix) in their name."""
        if topic in self._topology.internal_topics:
            return self._topology.internal_topics[topic].full_name(self._config.application_id)
        return topic

    def _prepare_topics(
        self, admin: Admin, subtopologies: list[SubTopology], timeout: float
    ) -> None:
        internal = self._topology.internal_topics
        sources = sorted({t for s in subtopologies for t in s.source_topics if t not in internal})
        # Sinks too: where topics are not auto-created (Heroku), producing to a
        # missing one would only fail after librdkafka's metadata timeout.
        sinks = sorted(
            {t for s in subtopologies for t in s.sink_topics if t not in internal} - set(sources)
        )
        dlq = self._config.errors_dead_letter_queue_topic_name
        if dlq is not None and dlq not in sources and dlq not in sinks:
            # Records the handlers skip go there; a topic missing would only show
            # at the first bad record, as a failed delivery.
            sinks.append(dlq)
        counts = admin.partition_counts([*sources, *sinks], timeout)
        missing = [t for t in [*sources, *sinks] if t not in counts]
        if missing and self._broker is not None and self._broker.name == "embedded":
            # Zero-setup: the embedded broker makes what the demo needs.
            admin.create_topics([TopicSpec(t, 4) for t in missing], timeout)
            counts.update(admin.partition_counts(missing, timeout))
            missing = []
        if missing == [dlq]:
            raise MissingSourceTopics(
                f"dead-letter queue topic {dlq!r} (errors_dead_letter_queue_topic_name) does "
                "not exist; create it (`topicflow topics SERVICE`, or your cluster's tooling) "
                "or unset the setting, and start again"
            )
        if missing:
            # The dead-letter topic counts among the sinks here: when others are
            # missing too, the prefix or the set-up is the likelier cause.
            parts = [
                f"{kind} topics missing: {', '.join(t for t in missing if t in names)}"
                for kind, names in (("source", sources), ("sink", sinks))
                if not set(missing).isdisjoint(names)
            ]
            raise MissingSourceTopics(
                f"{'; '.join(parts)}; create them (`topicflow topics SERVICE --partitions N`, "
                "or your cluster's tooling) and start again (on multi-tenant plans, topics "
                "the app may not read look missing too: check KAFKA_PREFIX)"
            )
        specs = self._internal_topic_specs(subtopologies, counts)
        existing = admin.partition_counts([s.name for s in specs], timeout)
        to_create = [s for s in specs if s.name not in existing]
        if to_create:
            log.info("creating internal topics: %s", ", ".join(s.name for s in to_create))
            try:
                admin.create_topics(to_create, timeout)
            except TopicflowError as error:
                raise MissingSourceTopics(
                    f"internal topics missing and not creatable ({error}); create them with "
                    "`topicflow topics SERVICE` and start again"
                ) from None

    def _fit_producer_to_topics(
        self, admin: Admin, subtopologies: list[SubTopology], timeout: float
    ) -> None:
        """Keep record batches within the smallest max.message.bytes of the topics written.

        librdkafka cannot know a topic's limit: a batch over it is refused whole by
        the broker, innocent records with the guilty one. With the producer's
        message.max.bytes at the limit, an oversized record is refused by
        produce() itself, alone, while its source record is at hand for the
        production handler and the dead-letter queue.
        """
        if "message.max.bytes" in {**self._config.client_config, **self._config.producer_config}:
            return  # the user's choice
        written = {self.resolve_topic(t) for s in subtopologies for t in s.sink_topics}
        written |= {
            self.resolve_topic(name)
            for name, topic in self._topology.internal_topics.items()
            if topic.kind == "changelog"
        }
        if self._config.errors_dead_letter_queue_topic_name:
            written.add(self._config.errors_dead_letter_queue_topic_name)
        try:
            limits = admin.max_message_bytes(sorted(written), timeout)
        except Exception as error:  # configs unreadable (ACLs): keep librdkafka's default
            log.info("cannot read the output topics' max.message.bytes (%s)", error)
            return
        if not limits:
            return
        smallest = min(limits.values())
        if smallest < LIBRDKAFKA_MESSAGE_MAX_BYTES:
            topic = min(limits, key=lambda name: limits[name])
            log.info(
                "producer message.max.bytes lowered to %d: the max.message.bytes of %s",
                smallest,
                topic,
            )
            self._config = self._config.with_overrides(
                producer_config={
                    **self._config.producer_config,
                    "message.max.bytes": smallest,
                    "batch.size": smallest,
                }
            )

    def _internal_topic_specs(
        self, subtopologies: list[SubTopology], counts: dict[str, int]
    ) -> list[TopicSpec]:
        """Repartition topics get their configured partitions, else as many as their upstream
        sub-topology's widest source topic (Kafka Streams' rule)."""
        internal = self._topology.internal_topics
        partitions: dict[str, int] = {}
        for name, topic in internal.items():
            if topic.partitions is not None:
                partitions[name] = topic.partitions
        # Upstream counts may themselves be internal: resolve until nothing changes.
        changed = True
        while changed:
            changed = False
            for sub in subtopologies:
                widths = [counts.get(t) or partitions.get(t) for t in sub.source_topics]
                if not widths or any(w is None for w in widths):
                    continue
                width = max(w for w in widths if w is not None)
                # A store's changelog has one partition per task of the sub-topology using it.
                changelogs = [
                    f"{store}-changelog"
                    for node in sub.nodes
                    for store in getattr(node, "stores", ())
                ]
                for topic_name in [*sub.sink_topics, *changelogs]:
                    if topic_name in internal and topic_name not in partitions:
                        partitions[topic_name] = width
                        changed = True
        specs = []
        for name, topic in internal.items():
            config = dict(topic.config)
            if topic.kind == "repartition":
                # Repartition records are consumed once; keep them only as long as needed.
                config.setdefault("cleanup.policy", "delete")
            specs.append(
                TopicSpec(
                    topic.full_name(self._config.application_id),
                    partitions.get(name, 1),
                    config=config,
                )
            )
        return specs

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
        return None

    def metrics(self) -> dict[str, int]:
        if self._processes is not None:
            return self._processes.metrics()
        total = WorkerMetrics()
        for worker in self._workers:
            total.add(worker.metrics)
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
