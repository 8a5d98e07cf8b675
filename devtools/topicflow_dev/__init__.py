"""Development and test services without Docker: `topicflow dev up|down|env`.

`up()` starts a real Apache Kafka broker (KRaft, single node) and a private
PostgreSQL 15 cluster, both on loopback, with their files in the git-ignored
`.dev/` folder of the project (see `dev_dir()`, or set `$TOPICFLOW_DEV_DIR`). Both are
detached processes: they keep running after the Python process that started
them exits, until `down()`. Every call is idempotent.

Ports: Kafka 19092 (its controller 19093) and PostgreSQL 15432, changed with
`TOPICFLOW_DEV_KAFKA_PORT` and `TOPICFLOW_DEV_PG_PORT`.

The URLs have the forms Heroku gives its add-ons' config vars (`KAFKA_URL`,
`DATABASE_URL`), so applications read the same settings in development and
production.
"""

from __future__ import annotations

import fcntl
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from topicflow_dev.errors import DevEnvError
from topicflow_dev.kafka import Broker
from topicflow_dev.postgres import Cluster

__all__ = [
    "DevEnv",
    "dev_dir",
    "down",
    "env",
    "freeze_kafka",
    "start_kafka",
    "start_postgres",
    "stop_kafka",
    "stop_postgres",
    "thaw_kafka",
    "up",
]

DEFAULT_KAFKA_PORT = 19092
DEFAULT_PG_PORT = 15432


@dataclass(frozen=True)
class DevEnv:
    """Where the development services listen."""

    kafka_url: str
    """`kafka://127.0.0.1:19092`, Heroku's KAFKA_URL form."""
    bootstrap_servers: str
    """`127.0.0.1:19092`, what confluent-kafka's `bootstrap.servers` takes."""
    database_url: str
    """`postgres://topicflow:topicflow@127.0.0.1:15432/topicflow`, Heroku's DATABASE_URL form."""

    def exports(self) -> str:
        """`export NAME=value` lines a POSIX shell can eval."""
        return f"export KAFKA_URL={self.kafka_url}\nexport DATABASE_URL={self.database_url}\n"


def dev_dir() -> Path:
    """The folder holding the services' files.

    `$TOPICFLOW_DEV_DIR`, else `.dev` in the project being worked on: the
    nearest folder, from the current one upwards, holding `.git` or `uv.lock`.
    Outside any project, `$XDG_CACHE_HOME/topicflow-dev` (`~/.cache/...`).
    Never next to this package: installed, that is inside site-packages.
    """
    override = os.environ.get("TOPICFLOW_DEV_DIR")
    if override:
        return Path(override).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists() or (folder / "uv.lock").is_file():
            return folder / ".dev"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "topicflow-dev"


def env() -> DevEnv:
    """The services' addresses (whether or not they are running)."""
    broker = _broker()
    return DevEnv(
        kafka_url=f"kafka://{broker.bootstrap_servers}",
        bootstrap_servers=broker.bootstrap_servers,
        database_url=_cluster().url,
    )


def up() -> DevEnv:
    """Start both services unless they are running, wait until they answer."""
    with _locked():
        _broker().start()
        _cluster().start()
    return env()


def down() -> None:
    """Stop both services; a no-op for those not running."""
    with _locked():
        _broker().stop()
        _cluster().stop()


def start_kafka() -> bool:
    """Start the broker unless it runs; True if this call started it."""
    with _locked():
        return _broker().start()


def stop_kafka() -> bool:
    """Stop the broker (SIGTERM, SIGKILL after 30 s); True if it was running."""
    with _locked():
        return _broker().stop()


def freeze_kafka() -> bool:
    """Freeze the broker (SIGSTOP), as behind a network partition: connections stay
    open and requests go unanswered, where a stop would first answer those in
    flight. True if it was running; `thaw_kafka()` resumes it."""
    with _locked():
        pid = _broker().pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGSTOP)
        return True


def thaw_kafka() -> bool:
    """Resume a frozen broker (SIGCONT); True if it was running."""
    with _locked():
        pid = _broker().pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGCONT)
        return True


def start_postgres() -> bool:
    """Start PostgreSQL unless it runs; True if this call started it."""
    with _locked():
        return _cluster().start()


def stop_postgres() -> bool:
    """Stop PostgreSQL (fast shutdown); True if it was running."""
    with _locked():
        return _cluster().stop()


def _broker() -> Broker:
    return Broker(dev_dir() / "kafka", _port("TOPICFLOW_DEV_KAFKA_PORT", DEFAULT_KAFKA_PORT))


def _cluster() -> Cluster:
    return Cluster(dev_dir() / "postgres", _port("TOPICFLOW_DEV_PG_PORT", DEFAULT_PG_PORT))


def _port(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        port = 0
    # Kafka's controller takes the next port, hence the upper bound.
    if not 1 <= port <= 65534:
        raise DevEnvError(f"{variable} must be a port number (1-65534), not {raw!r}")
    return port


@contextmanager
def _locked() -> Iterator[None]:
    """Serialise start/stop across processes (pytest workers, two shells)."""
    folder = dev_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
