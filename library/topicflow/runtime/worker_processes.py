"""Stream workers as processes: `num_stream_threads=N` on Kafka uses N cores.

Python threads share one core for Python code (the GIL), so on Apache Kafka
each stream worker runs in its own process, forked from the application's:
each is an ordinary single-worker KafkaStreams, a member of the consumer group
with its own tasks, state directory (`{state_dir}/{application_id}/worker-{i}`)
and transactional id. The parent KafkaStreams supervises them: it forks them
before it creates any Kafka client (librdkafka's threads do not survive a
fork), relays their start-up errors, states and metrics through a pipe, and
stops them on close().

On Heroku a dyno's processes all receive SIGTERM: each worker closes itself
(commit, leave the group); the parent waits for them. A worker that dies puts
the application in ERROR, so the process exits and Heroku restarts the dyno.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from topicflow.config import StreamsConfig
from topicflow.errors import BrokerUnavailable, ConfigError, MissingSourceTopics, TopicflowError
from topicflow.topology.topology import Topology

log = logging.getLogger(__name__)

# How often a worker reports its metrics and tasks to the parent.
REPORT_EVERY_S = 0.2

_ERRORS: dict[str, type[TopicflowError]] = {
    "ConfigError": ConfigError,
    "BrokerUnavailable": BrokerUnavailable,
    "MissingSourceTopics": MissingSourceTopics,
}


def worker_config(config: StreamsConfig, index: int) -> StreamsConfig:
    """One worker's config: a single stream worker, its own state and client id."""
    return dataclasses.replace(
        config,
        num_stream_threads=1,
        state_dir=str(Path(config.state_dir) / config.application_id / f"worker-{index}"),
        client_id=f"{config.client_id or config.application_id}-p{index}",
        group_instance_id=(
            f"{config.group_instance_id}-p{index}" if config.group_instance_id else None
        ),
    )


def _worker_main(
    index: int,
    topology: Topology,
    config: StreamsConfig,
    pipe: Connection,
    make_streams: Callable[[Topology, StreamsConfig], Any],
) -> None:
    """The body of one forked worker process: `make_streams` is KafkaStreams, given by
    the parent so that this module does not import the module that imports it."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    streams = make_streams(topology, worker_config(config, index))
    streams.set_state_listener(lambda new, _old: pipe.send(("state", new.value)))
    try:
        streams.start()
    except TopicflowError as error:
        pipe.send(("error", type(error).__name__, str(error)))
        os._exit(2)
    pipe.send(("started",))
    while not stop.is_set() and streams.state.value != "ERROR":
        if pipe.poll(REPORT_EVERY_S) and pipe.recv() == ("close",):
            break
        pipe.send(("metrics", streams.metrics(), streams.tasks()))
    clean = streams.close(25)
    failure = streams.error
    pipe.send(("metrics", streams.metrics(), {}))
    pipe.send(("closed", clean, None if failure is None else str(failure)))
    os._exit(0 if clean and failure is None else 1)


class WorkerProcesses:
    def __init__(
        self,
        topology: Topology,
        config: StreamsConfig,
        on_states: Callable[[list[str]], None],
        on_failure: Callable[[str], None],
        make_streams: Callable[[Topology, StreamsConfig], Any],
    ) -> None:
        self._make_streams = make_streams
        self._topology = topology
        self._config = config
        self._on_states = on_states
        self._on_failure = on_failure
        self._processes: list[Any] = []
        self._pipes: list[Connection] = []
        self._states: list[str] = []
        self._metrics: list[dict[str, int]] = []
        self._tasks: list[dict[str, list[str]]] = []
        self._closing = False
        self.error: str | None = None
        self._relay: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        """Fork the workers and wait until each has started (or raise its start-up error)."""
        context = multiprocessing.get_context("fork")
        count = self._config.num_stream_threads
        for index in range(count):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(index + 1, self._topology, self._config, child_end, self._make_streams),
                name=f"{self._config.application_id}-worker-{index + 1}",
                daemon=False,
            )
            process.start()
            child_end.close()
            self._processes.append(process)
            self._pipes.append(parent_end)
        self._states = ["CREATED"] * count
        self._metrics = [{} for _ in range(count)]
        self._tasks = [{} for _ in range(count)]
        deadline = time.monotonic() + timeout + 10
        for index, pipe in enumerate(self._pipes):
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not pipe.poll(remaining):
                    self._terminate()
                    raise BrokerUnavailable(
                        f"stream worker {index + 1} did not start within {timeout:.0f} s"
                    )
                message: Any = pipe.recv()
                if message[0] == "state":
                    self._states[index] = message[1]
                    continue
                if message[0] == "error":
                    self._terminate()
                    raise _ERRORS.get(message[1], TopicflowError)(message[2])
                break  # started
        self._relay = threading.Thread(target=self._relay_reports, name="worker-relay", daemon=True)
        self._relay.start()

    def _relay_reports(self) -> None:
        from multiprocessing.connection import wait

        open_pipes = dict(enumerate(self._pipes))
        while open_pipes:
            for ready in wait(list(open_pipes.values()), timeout=1.0):
                index = next(i for i, p in open_pipes.items() if p is ready)
                try:
                    message: Any = open_pipes[index].recv()
                except (EOFError, OSError):
                    del open_pipes[index]
                    if not self._closing and self.error is None:
                        self.error = f"stream worker {index + 1} died (exit code "
                        self._processes[index].join(1)
                        self.error += f"{self._processes[index].exitcode})"
                        self._on_failure(self.error)
                    continue
                kind: str = message[0]
                if kind == "state":
                    self._states[index] = message[1]
                    self._on_states(list(self._states))
                elif kind == "metrics":
                    metrics: dict[str, int] = message[1]
                    tasks: dict[str, list[str]] = message[2]
                    self._metrics[index] = metrics
                    self._tasks[index] = tasks
                elif kind == "closed" and message[2] is not None and self.error is None:
                    self.error = f"stream worker {index + 1}: {message[2]}"
                    if not self._closing:
                        self._on_failure(self.error)

    def close(self, timeout: float | None) -> bool:
        self._closing = True
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # already gone
                pipe.send(("close",))
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for process in self._processes:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            process.join(remaining)
            stopped = stopped and process.exitcode is not None
        if self._relay is not None:
            self._relay.join(2)
        return stopped and all(p.exitcode == 0 for p in self._processes)

    def _terminate(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(10)

    def metrics(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for metrics in self._metrics:
            for name, value in metrics.items():
                total[name] = total.get(name, 0) + value
        return total

    def tasks(self) -> dict[str, list[str]]:
        """Task ids per worker, named `worker-{i}/{stream worker}`: every process's one
        stream worker has the same name."""
        return {
            f"worker-{index + 1}/{name}": ids
            for index, tasks in enumerate(self._tasks)
            for name, ids in tasks.items()
        }
