"""TopologyTestDriver: run a topology record by record, with no broker and no threads.

    driver = TopologyTestDriver(builder.build(), config)
    lines = driver.create_input_topic("textlines", Serdes.String(), Serdes.String())
    words = driver.create_output_topic("words", Serdes.String(), Serdes.String())
    lines.pipe_input("Hello world")
    assert words.read_values_to_list() == ["hello", "world"]

Each sub-topology runs as one task (partition 0) through the same task and
per-record code as the real runtime. Records written to a topic the topology
reads (repartition topics, or a user topic that is also a source) are
processed right after the record that produced them, as in Kafka Streams'
driver. A record piped into a global table's topic updates its store at once.
Wall-clock time only moves with `advance_wall_clock_time`.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, NamedTuple, TypeVar

from topicflow.brokers.base import Headers
from topicflow.brokers.embedded.message import EmbeddedMessage
from topicflow.config import StreamsConfig
from topicflow.errors import TopologyError
from topicflow.processor.api import PunctuationType
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.processing import BatchProcessor, Routes, WorkerMetrics
from topicflow.runtime.source_route import TaskId
from topicflow.runtime.task import StreamTask
from topicflow.serdes import Serde
from topicflow.state.global_state import GlobalStateManager
from topicflow.topology.topology import Topology

K = TypeVar("K")
V = TypeVar("V")


class KeyValue(NamedTuple):
    key: Any
    value: Any


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    key: Any
    value: Any
    timestamp: int
    headers: Headers | None = None


class _DriverSender:
    """Captures what sinks send; feeds topics the topology reads back into it."""

    def __init__(self, driver: TopologyTestDriver) -> None:
        self._driver = driver

    def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
        partition: int,
    ) -> None:
        self._driver._record_output(topic, key, value, timestamp, headers)

    def partition_count(self, topic: str) -> int:
        return 1


class TopologyTestDriver:
    __test__ = False  # not a pytest test class

    def __init__(
        self,
        topology: Topology,
        config: StreamsConfig | None = None,
        initial_wall_clock_time_ms: int = 0,
        commit_every_record: bool = True,
    ) -> None:
        topology.validate()
        self._config = config or StreamsConfig(application_id="topology-test-driver")
        if self._config.outer_join_emit_interval_ms is None:
            # As Kafka Streams' driver: outer joins emit without waiting on the wall clock.
            self._config = dataclasses.replace(self._config, outer_join_emit_interval_ms=0)
        self._topology = topology
        self._wall_clock = initial_wall_clock_time_ms
        self._outputs: dict[str, collections.deque[TestRecord]] = collections.defaultdict(
            collections.deque
        )
        self._offsets: dict[str, int] = collections.defaultdict(int)
        self._pending: collections.deque[EmbeddedMessage] = collections.deque()
        self._in_pipe = False
        self._commit_every_record = commit_every_record
        self.metrics = WorkerMetrics()
        sender = _DriverSender(self)
        # Dead letters come out as the driver's output, on their topic.
        self.errors = ErrorHandling(self._config, self.metrics)
        self.errors.sender = sender
        self._processor = BatchProcessor(self._config, self.metrics, self.errors)
        self._tasks: list[StreamTask] = []
        self._routes: Routes = {}
        self._global = GlobalStateManager(
            topology,
            self._config,
            self.metrics,
            lambda message, error: self.errors.deserialization_failed(
                "global", message, error, "deserialization"
            ),
        )
        self._global_topics = {g.topic for g in topology.global_stores.values()}
        for sub in topology.subtopologies():
            task = StreamTask(
                TaskId(sub.id, 0),
                sub,
                self._config,
                sender,
                self._resolve,
                self._clock,
                self.metrics,
                topology.state_stores,
                errors=self.errors,
                global_stores=self._global.stores,
            )
            self._tasks.append(task)
            for topic in task.source_topics:
                self._routes[topic] = {0: task.route(topic, 0)}

    def _resolve(self, topic: str) -> str:
        internal = self._topology.internal_topics
        if topic in internal:
            return internal[topic].full_name(self._config.application_id)
        return topic

    def _clock(self) -> int:
        return self._wall_clock

    # -- topics ------------------------------------------------------------------

    def create_input_topic(
        self,
        topic: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
    ) -> TestInputTopic[Any, Any]:
        if topic not in self._routes and topic not in self._global_topics:
            raise TopologyError(
                f"the topology does not read {topic!r}; it reads "
                f"{sorted([*self._routes, *self._global_topics])}"
            )
        return TestInputTopic(
            self,
            topic,
            key_serde or self._config.default_key_serde,
            value_serde or self._config.default_value_serde,
        )

    def create_output_topic(
        self,
        topic: str,
        key_serde: Serde[Any] | None = None,
        value_serde: Serde[Any] | None = None,
    ) -> TestOutputTopic[Any, Any]:
        return TestOutputTopic(
            self,
            topic,
            key_serde or self._config.default_key_serde,
            value_serde or self._config.default_value_serde,
        )

    # -- time --------------------------------------------------------------------

    def advance_wall_clock_time(self, advance: timedelta | int) -> None:
        """Move the wall clock forward (ms or timedelta) and fire due wall-clock punctuators."""
        ms = int(advance.total_seconds() * 1000) if isinstance(advance, timedelta) else advance
        self._wall_clock += ms
        for task in self._tasks:
            task.punctuate(PunctuationType.WALL_CLOCK_TIME, self._wall_clock)
        self._drain()

    @property
    def wall_clock_time_ms(self) -> int:
        return self._wall_clock

    # -- the record path ---------------------------------------------------------

    def pipe_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None = None,
    ) -> None:
        """Process one serialized record read from `topic`, then everything it caused."""
        self._pending.append(self._message(topic, key, value, timestamp, headers))
        self._drain()

    def _message(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> EmbeddedMessage:
        offset = self._offsets[topic]
        self._offsets[topic] = offset + 1
        return EmbeddedMessage(topic, 0, offset, key, value, timestamp, headers)

    def _drain(self) -> None:
        if self._in_pipe:  # a punctuator or record is already draining the queue
            return
        self._in_pipe = True
        try:
            while self._pending:
                message = self._pending.popleft()
                if message.topic() in self._global_topics:
                    self._global.apply([message])
                    continue
                route = self._routes[message.topic()][0]
                self._processor.process_batch([message], self._routes)
                if route.task.stream_time >= 0:
                    route.task.punctuate(PunctuationType.STREAM_TIME, route.task.stream_time)
                if self._commit_every_record and not self._pending:
                    for task in self._tasks:
                        task.flush()
        finally:
            self._in_pipe = False

    def _record_output(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        if topic in self._routes or topic in self._global_topics:
            self._pending.append(self._message(topic, key, value, timestamp, headers))
        internal_names = {self._resolve(t) for t in self._topology.internal_topics}
        if topic not in internal_names:
            self._outputs[topic].append(TestRecord(key, value, timestamp, headers))

    def _read_raw(self, topic: str) -> TestRecord | None:
        queue = self._outputs.get(topic)
        return queue.popleft() if queue else None

    def _queue_size(self, topic: str) -> int:
        return len(self._outputs.get(topic, ()))

    # -- stores and commits --------------------------------------------------------

    def get_state_store(self, name: str) -> Any:
        """The store `name` as its processors see it (caches included)."""
        for task in self._tasks:
            if name in task.state.stores:
                return task.state.stores[name]
        if name in self._global.stores:
            return self._global.stores[name]
        raise TopologyError(f"no state store {name!r}; the stores are {self._store_names()}")

    def get_key_value_store(self, name: str) -> Any:
        store = self.get_state_store(name)
        if store.spec.kind != "key_value":
            raise TopologyError(f"{name!r} is a {store.spec.kind} store, not a key-value store")
        return store

    def get_window_store(self, name: str) -> Any:
        store = self.get_state_store(name)
        if store.spec.kind != "window":
            raise TopologyError(f"{name!r} is a {store.spec.kind} store, not a window store")
        return store

    def _store_names(self) -> list[str]:
        return sorted(
            [*(n for task in self._tasks for n in task.state.stores), *self._global.stores]
        )

    def commit(self) -> None:
        """What a commit does to the tasks: flush every cache (forwarding downstream) and sink.

        The driver commits after every piped record unless `commit_every_record`
        is False, as Kafka Streams' driver does (so caching is invisible by default).
        """
        # A flush can send records through an internal topic (a cached table feeding
        # a repartition): process them, then flush what they updated, until done.
        while True:
            for task in self._tasks:
                task.flush()
            if not self._pending:
                break
            self._drain()

    def producer_topics(self) -> list[str]:
        """Names of the topics written so far."""
        return sorted(self._outputs)

    def close(self) -> None:
        for task in self._tasks:
            task.close()
        self._tasks.clear()
        self._global.close()

    def __enter__(self) -> TopologyTestDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TestInputTopic(Generic[K, V]):
    """Pipes records into one input topic. Timestamps default to the driver's wall clock."""

    __test__ = False

    def __init__(
        self, driver: TopologyTestDriver, topic: str, key_serde: Serde[K], value_serde: Serde[V]
    ) -> None:
        self._driver = driver
        self._topic = topic
        self._key_serde = key_serde
        self._value_serde = value_serde

    def pipe_input(
        self, *key_value: Any, timestamp: int | None = None, headers: Headers | None = None
    ) -> None:
        """`pipe_input(value)` or `pipe_input(key, value)`, as Kafka Streams' overloads."""
        if len(key_value) == 1:
            key, value = None, key_value[0]
        elif len(key_value) == 2:
            key, value = key_value
        else:
            raise TypeError("pipe_input takes (value) or (key, value)")
        ts = self._driver.wall_clock_time_ms if timestamp is None else timestamp
        self._driver.pipe_raw(
            self._topic,
            self._key_serde.serialize(key),
            self._value_serde.serialize(value),
            ts,
            headers,
        )

    def pipe_value_list(self, values: Iterable[V], timestamp: int | None = None) -> None:
        for value in values:
            self.pipe_input(value, timestamp=timestamp)

    def pipe_key_value_list(
        self, pairs: Iterable[tuple[K, V]], timestamp: int | None = None
    ) -> None:
        for key, value in pairs:
            self.pipe_input(key, value, timestamp=timestamp)


class TestOutputTopic(Generic[K, V]):
    """Reads what the topology wrote to one topic, oldest first."""

    __test__ = False

    def __init__(
        self, driver: TopologyTestDriver, topic: str, key_serde: Serde[K], value_serde: Serde[V]
    ) -> None:
        self._driver = driver
        self._topic = topic
        self._key_serde = key_serde
        self._value_serde = value_serde

    def read_record(self) -> TestRecord:
        raw = self._driver._read_raw(self._topic)
        if raw is None:
            raise IndexError(f"no record left in output topic {self._topic!r}")
        return TestRecord(
            self._key_serde.deserialize(raw.key),
            self._value_serde.deserialize(raw.value),
            raw.timestamp,
            raw.headers,
        )

    def read_value(self) -> Any:
        return self.read_record().value

    def read_key_value(self) -> KeyValue:
        record = self.read_record()
        return KeyValue(record.key, record.value)

    def read_records_to_list(self) -> list[TestRecord]:
        records = []
        while not self.is_empty():
            records.append(self.read_record())
        return records

    def read_values_to_list(self) -> list[Any]:
        return [r.value for r in self.read_records_to_list()]

    def read_key_values_to_list(self) -> list[KeyValue]:
        return [KeyValue(r.key, r.value) for r in self.read_records_to_list()]

    def read_key_values_to_map(self) -> dict[Any, Any]:
        """The latest value per key."""
        return {r.key: r.value for r in self.read_records_to_list()}

    def is_empty(self) -> bool:
        return self._driver._queue_size(self._topic) == 0

    def get_queue_size(self) -> int:
        return self._driver._queue_size(self._topic)
