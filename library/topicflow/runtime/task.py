"""StreamTask: one sub-topology instantiated for one partition number.

A task owns the node instances of its sub-topology, the record context of the
record in flight, its stream time (the largest timestamp it has seen), its
punctuation schedules, and the position of each input partition it reads.
The stream worker feeds it consumed messages through its `SourceRoute`s
(runtime/source_route.py). Its sinks' per-record functions are built by
runtime/sink_nodes.py, and its punctuators kept and fired by
runtime/punctuation.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from topicflow.config import StreamsConfig
from topicflow.errors import RecordsRefused, StreamsException, TopologyError
from topicflow.processor.api import Cancellable, PunctuationType, Punctuator
from topicflow.processor.context import system_time_ms
from topicflow.runtime.error_handling import ErrorHandling
from topicflow.runtime.punctuation import PunctuationQueue
from topicflow.runtime.replay import OriginFilter, origin_id
from topicflow.runtime.sink_nodes import build_sink
from topicflow.runtime.source_route import SourceRoute, TaskId
from topicflow.serdes import Serde, bytes_decoder, resolve_serde
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


class StreamTask:
    """Implements the `TaskContext` that node instances see."""

    # Fire due punctuators of one type; returns how many fired. The queue's own
    # method, bound in __init__: the stream worker calls it for every task at
    # each turn of its loop, and a delegating method would add a call to each.
    punctuate: Callable[[PunctuationType, int], int]

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
        global_stores: dict[str, Any] | None = None,
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
        self._punctuations = PunctuationQueue(self, self.record_context, clock)
        self.punctuate = self._punctuations.punctuate
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
        # The instance's global stores (kept up to date by its global stream thread).
        self._global_stores = global_stores or {}
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
    def config(self) -> StreamsConfig:
        return self._config

    @property
    def sender(self) -> RecordSender:
        return self._sender

    def wall_clock_ms(self) -> int:
        return self._clock()

    def schedule(
        self, interval_ms: int, punctuation_type: PunctuationType, callback: Punctuator
    ) -> Cancellable:
        return self._punctuations.schedule(interval_ms, punctuation_type, callback)

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
            if name in self._global_stores:
                return self._global_stores[name]
            raise TopologyError(
                f"task {self.id} has no state store {name!r}; connect it to the processor "
                "with stream.process(supplier, 'store-name')"
            ) from None

    @property
    def default_key_serde(self) -> Serde[Any]:
        return self._config.default_key_serde

    @property
    def default_value_serde(self) -> Serde[Any]:
        return self._config.default_value_serde

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
                built = build_sink(
                    node,
                    str(self.id),
                    self._config,
                    self._sender,
                    self.record_context,
                    self._resolve,
                    self.errors,
                )
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

    def route(self, topic: str, partition: int) -> SourceRoute:
        """The entry of one input partition (`topic` resolved) into this task."""
        try:
            node, process = self._sources[topic]
        except KeyError:
            raise StreamsException(f"task {self.id} does not read topic {topic!r}") from None
        key_serde: Serde[Any] = node.key_serde or self._config.default_key_serde
        value_serde: Serde[Any] = resolve_serde(node.value_serde, self._config.default_value_serde)
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
            route.screen = self.origins.screen
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
