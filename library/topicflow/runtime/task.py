"""StreamTask: one sub-topology instantiated for one partition number.

A task owns the node instances of its sub-topology, the record context of the
record in flight, its stream time (the largest timestamp it has seen), its
punctuation schedules, and the position of each input partition it reads.
The stream worker feeds it consumed messages through its `SourceRoute`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from topicflow.brokers.base import Headers
from topicflow.config import StreamsConfig, TimestampExtractor
from topicflow.errors import HandlerFailed, RecordsRefused, StreamsException, TopologyError
from topicflow.processor.api import Cancellable, PunctuationType, Punctuator
from topicflow.processor.context import system_time_ms
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.record_collector import RecordCollector
from topicflow.runtime.replay import (
    MAX_OUTPUTS_PER_RECORD,
    ORIGIN,
    ORIGIN_HEADER,
    SEQUENCE_BITS,
    OriginFilter,
    origin_id,
    output_position,
)
from topicflow.serdes import Serde, bytes_decoder, encode_str
from topicflow.state.manager import StateManager, WarmState
from topicflow.state.stores import StoreSpec
from topicflow.topology.nodes import (
    Forward,
    ProcessorNode,
    RecordContext,
    RecordSender,
    SinkNode,
    SourceNode,
    TaskMetrics,
    forward_to,
)
from topicflow.topology.topology import SubTopology


@dataclass(frozen=True, order=True, slots=True)
class TaskId:
    subtopology: int
    partition: int

    def __str__(self) -> str:
        return f"{self.subtopology}_{self.partition}"


class SourceRoute:
    """How a message of one input partition enters its task; one per topic-partition.

    `position` is the offset of the next record to process: what the commit
    cycle commits for this partition. The per-record path only keeps the last
    message it processed or skipped (`last`); its offset is read when needed.
    """

    __slots__ = (
        "decode_key",
        "decode_value",
        "extractor",
        "last",
        "origin",
        "origins",
        "partition",
        "process",
        "task",
        "topic",
    )

    def __init__(
        self,
        task: StreamTask,
        topic: str,
        partition: int,
        decode_key: Callable[[bytes], Any] | None,
        decode_value: Callable[[bytes], Any] | None,
        process: Forward,
        extractor: TimestampExtractor | None,
    ) -> None:
        self.task = task
        self.topic = topic
        self.partition = partition
        # Called on non-null bytes only; None: the bytes are the key or value.
        self.decode_key = decode_key
        self.decode_value = decode_value
        self.process = process
        self.extractor = extractor
        self.last: Any = None  # the last message processed or skipped; None: none yet
        # Idempotent state only (else None): this partition's origin id, stamped on
        # the task's outputs, and the task's filter of replayed inputs.
        self.origin: bytes | None = None
        self.origins: OriginFilter | None = None

    @property
    def position(self) -> int:
        """The offset after the last message processed or skipped; -1: none yet."""
        last = self.last
        return -1 if last is None else last.offset() + 1


class _Schedule:
    __slots__ = ("callback", "cancelled", "interval", "next_time", "type")

    def __init__(
        self, interval: int, ptype: PunctuationType, callback: Punctuator, next_time: int
    ) -> None:
        self.interval = interval
        self.type = ptype
        self.callback = callback
        self.next_time = next_time
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class StreamTask:
    """Implements the `TaskContext` that node instances see."""

    def __init__(
        self,
        task_id: TaskId,
        subtopology: SubTopology,
        config: StreamsConfig,
        sender: RecordSender,
        resolve_topic: Callable[[str], str],
        clock: Callable[[], int] = system_time_ms,
        metrics: TaskMetrics | None = None,
        store_specs: dict[str, StoreSpec] | None = None,
        warm: WarmState | None = None,
        errors: ErrorHandling | None = None,
    ) -> None:
        self.id = task_id
        self.metrics: TaskMetrics = metrics if metrics is not None else _Counters()
        self.errors = errors if errors is not None else ErrorHandling(config, self.metrics)
        self._subtopology = subtopology
        self._config = config
        self._sender = sender
        self._clock = clock
        self._resolve = resolve_topic
        # Plain attributes, not properties: the per-record path reads and writes them.
        self.record_context = RecordContext()
        self.stream_time = -1
        # Idempotent state: which replayed inputs to drop (see runtime/replay.py).
        self.origins: OriginFilter | None = OriginFilter() if config.stamps_replays else None
        self.routes: list[SourceRoute] = []
        self._schedules: list[_Schedule] = []
        self._commit_requested = False
        self._instances: dict[str, Forward] = {}
        # Commit and close listeners with the position of the node that registered them.
        # (position, flush, node name): the name for records a sink's flush refused.
        self._commit_listeners: list[tuple[int, Callable[[], None], str]] = []
        self._close_listeners: list[tuple[int, Callable[[], None]]] = []
        self._building = 0
        self._building_name = ""
        # Built at the first failure: see node_of.
        self._node_functions: tuple[dict[Any, list[tuple[str, Any]]], dict[int, str]] | None = None
        self._sources: dict[str, tuple[SourceNode, Forward]] = {}
        specs = store_specs or {}
        self.state = StateManager(
            str(task_id),
            task_id.partition,
            [specs[name] for name in subtopology.store_names()],
            config,
            sender,
            self.record_context,
            self.flushed_through if config.stamps_replays else None,
            warm,
        )
        self._build()

    # -- TaskContext -------------------------------------------------------------------

    @property
    def application_id(self) -> str:
        return self._config.application_id

    @property
    def task_id(self) -> str:
        return str(self.id)

    @property
    def sender(self) -> RecordSender:
        return self._sender

    def wall_clock_ms(self) -> int:
        return self._clock()

    def schedule(
        self, interval_ms: int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable:
        if punctuation_type is PunctuationType.WALL_CLOCK_TIME:
            first = self._clock() + interval_ms
        else:
            # As Kafka Streams: a stream-time schedule starts at 0, so it fires at
            # the first record, then at multiples of the interval.
            first = 0
        schedule = _Schedule(interval_ms, punctuation_type, callback, first)
        self._schedules.append(schedule)
        return schedule

    def request_commit(self) -> None:
        self._commit_requested = True

    def on_commit(self, flush: Callable[[], None]) -> None:
        self._commit_listeners.append((self._building, flush, self._building_name))

    def on_close(self, close: Callable[[], None]) -> None:
        self._close_listeners.append((self._building, close))

    def get_state_store(self, name: str) -> Any:
        try:
            return self.state.stores[name]
        except KeyError:
            raise TopologyError(
                f"task {self.id} has no state store {name!r}; connect it to the processor "
                "with stream.process(supplier, 'store-name')"
            ) from None

    # -- building ----------------------------------------------------------------------

    def _build(self) -> None:
        nodes = {n.name: n for n in self._subtopology.nodes}
        position = {n.name: i for i, n in enumerate(self._subtopology.nodes)}
        first_user: dict[str, int] = {}

        def instance(name: str) -> Forward:
            built = self._instances.get(name)
            if built is not None:
                return built
            node = nodes[name]
            if isinstance(node, SinkNode):
                built = self._sink(node)
            else:
                children = {child: instance(child) for child in node.children}
                if isinstance(node, SourceNode):
                    built = forward_to(children)
                else:
                    self._building = position[name]
                    self._building_name = name
                    for store in node.stores:
                        first_user.setdefault(store, position[name])
                    built = self._processor(node, children)
            self._instances[name] = built
            return built

        for node in self._subtopology.nodes:
            if isinstance(node, SourceNode):
                process = instance(node.name)
                for topic in node.topics:
                    self._sources[self._resolve(topic)] = (node, process)
        # A store whose cache forwards (an aggregation's) flushes at its first
        # user's place, before the nodes it forwards to. Any other store flushes
        # last, after the sinks: what it records (e.g. "this alert was sent") must
        # not reach its changelog before the sinks have delivered.
        last = len(self._subtopology.nodes)
        for store_name, first in first_user.items():
            store = self.state.stores[store_name]
            self._commit_listeners.append(
                (first if store.forwards else last, store.flush, store_name)
            )
        # Upstream first; stable, so one node's listeners keep their order.
        self._commit_listeners.sort(key=lambda listener: listener[0])
        self._close_listeners.sort(key=lambda listener: listener[0])

    def _processor(self, node: ProcessorNode, children: dict[str, Forward]) -> Forward:
        try:
            built = node.factory(self, children)
        except Exception as error:
            raise StreamsException(
                f"initializing processor {node.name!r} for task {self.id} failed: {error}"
            ) from error
        return built

    def _sink(self, node: SinkNode) -> Forward:
        """The sink's per-record function: serialize, then hand to the producer.

        On the producer (a RecordCollector) it calls the client's `produce`
        itself, positionally, and falls back to `send` only when the queue is
        full; String serdes are not called at all, since the client encodes a
        str as UTF-8, which is what the serde would do.
        """
        sender = self._sender
        collector = sender if isinstance(sender, RecordCollector) else _Producing(sender)
        produce, on_delivery, send = collector.produce, collector.on_delivery, collector.send
        raw = isinstance(sender, RecordCollector)
        key_serde = node.key_serde or self._config.default_key_serde
        value_serde = node.value_serde or self._config.default_value_serde
        serialize_key = None if raw and key_serde.serialize is encode_str else key_serde.serialize
        serialize_value = (
            None if raw and value_serde.serialize is encode_str else value_serde.serialize
        )
        rc = self.record_context
        partitioner = node.partitioner
        extractor = node.topic_extractor
        partition_count = sender.partition_count
        stamp = _origin_stamper(rc, partition_count) if self._config.stamps_replays else None
        static_topic = self._resolve(node.topic or "")
        production_failed = self.errors.production_failed
        task_id, node_name = str(self.id), node.name

        def failed(topic: str, key: Any, value: Any, error: Exception) -> None:
            # KIP-1065: serializing or producing this record failed (e.g. too large).
            production_failed(
                task_id, node_name, rc.message, topic, key, value, rc.timestamp, error
            )

        if extractor is None and partitioner is None and stamp is None:
            topic = static_topic

            def sink(key: Any, value: Any) -> None:
                try:
                    if serialize_key is not None and key is not None:
                        key = serialize_key(key)
                    if serialize_value is not None:
                        value = serialize_value(value)
                    produce(topic, value, key, -1, on_delivery, None, rc.timestamp, rc.headers)
                except BufferError:
                    send(topic, key, value, rc.timestamp, rc.headers, -1)
                    return
                except Exception as error:
                    failed(topic, key, value, error)
                    return
                collector.sent += 1

            return sink

        def routed_sink(key: Any, value: Any) -> None:
            topic = static_topic if extractor is None else extractor(key, value, rc)
            partition = -1
            if partitioner is not None:
                partition = partitioner(topic, key, value, partition_count(topic))
            try:
                if serialize_key is not None and key is not None:
                    key = serialize_key(key)
                if serialize_value is not None:
                    value = serialize_value(value)
            except Exception as error:
                failed(topic, key, value, error)
                return
            headers = rc.headers
            if stamp is not None:
                headers, partition = stamp(topic, key, partition)
            try:
                produce(topic, value, key, partition, on_delivery, None, rc.timestamp, headers)
            except BufferError:
                send(topic, key, value, rc.timestamp, headers, partition)
                return
            except Exception as error:
                failed(topic, key, value, error)
                return
            collector.sent += 1

        return routed_sink

    def route(self, topic: str, partition: int) -> SourceRoute:
        """The entry of one input partition (`topic` resolved) into this task."""
        try:
            node, process = self._sources[topic]
        except KeyError:
            raise StreamsException(f"task {self.id} does not read topic {topic!r}") from None
        key_serde: Serde[Any] = node.key_serde or self._config.default_key_serde
        value_serde: Serde[Any] = node.value_serde or self._config.default_value_serde
        extractor = node.timestamp_extractor or self._config.default_timestamp_extractor
        route = SourceRoute(
            self,
            topic,
            partition,
            bytes_decoder(key_serde),
            bytes_decoder(value_serde),
            process,
            extractor,
        )
        if self.origins is not None:
            route.origin = origin_id(self._config.application_id, topic, partition)
            route.origins = self.origins
        self.routes = [r for r in self.routes if (r.topic, r.partition) != (topic, partition)]
        self.routes.append(route)
        return route

    def flushed_through(self) -> int:
        """The input offset before which every record is reflected in the stores:
        the flush stamp of changelog records written now (single-topic tasks)."""
        position = self.routes[0].position if self.routes else -1
        message = self.record_context.message
        if message is not None:
            # Inside the processing of a record (a cache overflow): it is applied.
            position = max(position, message.offset() + 1)
        return position

    @property
    def source_topics(self) -> list[str]:
        return list(self._sources)

    # -- time ------------------------------------------------------------------------

    def punctuate(self, ptype: PunctuationType, now: int) -> int:
        """Fire due punctuators of one type; returns how many fired."""
        fired = 0
        if not self._schedules:
            return 0
        rc = self.record_context
        for schedule in list(self._schedules):
            if schedule.cancelled:
                self._schedules.remove(schedule)
                continue
            if schedule.type is not ptype:
                continue
            if now < schedule.next_time:
                continue
            rc.message, rc.timestamp, rc.headers, rc.origin = None, now, None, None
            try:
                schedule.callback(now)
            except (HandlerFailed, StreamsException, TopologyError):
                raise
            except Exception as error:
                # KIP-1033: a punctuator's failure goes to the processing handler too.
                self.errors.processing_failed(
                    str(self.id), None, None, None, now, error, self.node_of(error)
                )
            fired += 1
            # As Kafka Streams' PunctuationSchedule.next: one firing however many
            # intervals were missed, then the next on the schedule's own grid
            # (first time + a multiple of the interval), not `now + interval`.
            interval = schedule.interval
            missed = (now - schedule.next_time) // interval
            schedule.next_time += (missed + 1) * interval
        return fired

    def node_of(self, error: BaseException) -> str | None:
        """The processor node an exception was raised in, from its traceback.

        Kafka Streams tracks the current node on every forward; that costs a write
        per node per record, so it is found here instead, only when something
        failed: the innermost frame that is a node's function (several nodes of
        one kind share code, and differ by their closures' contents), or a method
        of an object only one node holds (a user Processor, in a punctuator).
        """
        if self._node_functions is None:
            self._node_functions = _index_nodes(self._instances)
        functions, owners = self._node_functions
        frames = []
        tb = error.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            for name, function in functions.get(frame.f_code, ()):
                cells = function.__closure__ or ()
                free = frame.f_code.co_freevars
                local = frame.f_locals
                if all(
                    local.get(var) is cell.cell_contents
                    for var, cell in zip(free, cells, strict=True)
                ):
                    return name
            owner = frame.f_locals.get("self")
            if owner is not None and id(owner) in owners:
                return owners[id(owner)]
        return None

    def take_commit_request(self) -> bool:
        requested, self._commit_requested = self._commit_requested, False
        return requested

    # -- closing ---------------------------------------------------------------------

    def flush(self) -> None:
        """Run the commit listeners: stores' caches and changelogs, sinks' batches.

        May raise RetriableError (an external system is down): the caller must
        then not commit, and call flush again later.
        """
        # What a flush sends derives from no single input record: no origin, and
        # no source record for the error handlers.
        rc = self.record_context
        rc.origin = None
        rc.message = None
        for _position, flush, node in self._commit_listeners:
            try:
                flush()
            except RecordsRefused as refused:
                # The sink wrote everything else: each refused record goes to the
                # processing handler (skip and dead-letter, or stop).
                now = self._clock()
                for record in refused.refused:
                    self.errors.records_refused(str(self.id), node, record, now)

    def close(self) -> None:
        errors = []
        for _position, close in [*self._close_listeners, (0, self.state.close)]:
            try:
                close()
            except Exception as error:  # close everything, report the first failure
                errors.append(error)
        self._close_listeners.clear()
        self._commit_listeners.clear()
        if errors:
            raise StreamsException(f"closing task {self.id} failed: {errors[0]}") from errors[0]


def _index_nodes(
    instances: dict[str, Forward],
) -> tuple[dict[Any, list[tuple[str, Any]]], dict[int, str]]:
    """Node functions by code object, and node names by the objects (other than
    functions and shared context) their closures hold: see StreamTask.node_of."""
    functions: dict[Any, list[tuple[str, Any]]] = {}
    held: dict[int, set[str]] = {}
    for name, forward in instances.items():
        function = getattr(forward, "__func__", forward)
        code = getattr(function, "__code__", None)
        if code is None:
            continue
        functions.setdefault(code, []).append((name, function))
        for cell in function.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            target = getattr(content, "__self__", None)  # a bound method's object
            if target is not None and not isinstance(target, type):
                held.setdefault(id(target), set()).add(name)
    owners = {key: next(iter(names)) for key, names in held.items() if len(names) == 1}
    return functions, owners


def _origin_stamper(
    rc: RecordContext, partition_count: Callable[[str], int]
) -> Callable[[str, bytes | None, int], tuple[Headers | None, int]]:
    """Idempotent state: (headers, partition) of an output, stamped with its origin
    and position (see runtime/replay.py)."""
    pack = ORIGIN.pack

    def stamp(topic: str, key_bytes: bytes | None, partition: int) -> tuple[Headers | None, int]:
        headers = rc.headers
        origin = rc.origin
        if origin is None:  # not derived from one input record: nothing to stamp
            return headers, partition
        ordinal = rc.ordinal
        if ordinal >= MAX_OUTPUTS_PER_RECORD:
            output_position(rc.position >> SEQUENCE_BITS, ordinal)  # raises
        rc.ordinal = ordinal + 1
        header = (ORIGIN_HEADER, pack(origin, rc.position + ordinal))
        headers = [header] if not headers else [*headers, header]
        if partition < 0 and key_bytes is None:
            # A keyless record goes where its origin says, not at random: a replay
            # must land in the partition of the first copy, whose reader knows it
            # (round-robin over a record's outputs).
            offset = rc.position >> SEQUENCE_BITS
            partition = (origin[0] + offset + ordinal) % partition_count(topic)
        return headers, partition

    return stamp


class _Producing:
    """A RecordSender other than the producer (the test driver's) seen as the
    sinks see a RecordCollector."""

    on_delivery: Callable[[Any, Any], None] | None = None

    def __init__(self, sender: RecordSender) -> None:
        self.send = sender.send
        self.sent = 0

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        _on_delivery: Callable[[Any, Any], None] | None,
        _callback: None,
        timestamp: int,
        headers: Headers | None,
    ) -> None:
        self.send(topic, key, value, timestamp, headers, partition)


class _Counters:
    """Metrics of a task run outside a stream worker."""

    def __init__(self) -> None:
        self.dropped_records = 0
        self.late_records = 0
        self.replayed_updates_skipped = 0
        self.deserialization_errors = 0
        self.invalid_timestamps = 0
        self.processing_errors = 0
        self.production_errors = 0
        self.sink_errors = 0
        self.dead_lettered = 0
