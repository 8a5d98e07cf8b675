"""A single-node Apache Kafka broker (KRaft) on loopback, for development and tests.

Everything lives under one folder (`<dev dir>/kafka`):

    libs/              the broker jars, fetched once with Maven (kafka-pom.xml)
    data/              the log directory (formatted once with a random cluster id)
    server.properties  rewritten on every start, so a port change takes effect
    log4j2.properties  the broker's logging setup (to stdout, i.e. broker.log)
    broker.log         stdout/stderr of the broker's current run
    broker.pid         pid of the running broker

The broker is a detached JVM: it outlives the process that started it, and
`stop` finds it again through the pid file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from topicflow_dev.errors import DevEnvError

POM = Path(__file__).with_name("kafka-pom.xml")
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0

# The main class of the broker's JVM: how a pid is recognised as ours.
_MAIN_CLASS = "kafka.Kafka"

_LOG4J2 = """\
# Written by topicflow_dev.kafka on every start; edits are lost.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
# Per-request and state-change chatter drowns the interesting lines.
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _server_properties(port: int, data: Path) -> str:
    controller = port + 1
    return f"""\
# Written by topicflow_dev.kafka on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{HOST}:{controller}
listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller}
advertised.listeners=PLAINTEXT://{HOST}:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
# One broker: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the defaults (50) make the first group or
# transaction much faster to set up; a dev broker has no load to spread.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=3
# Tests start consumers one after the other; do not wait for more to join.
group.initial.rebalance.delay.ms=0
# Tests use short session timeouts to see failures quickly.
group.min.session.timeout.ms=1000
# Like Heroku's Kafka: applications must create their topics themselves.
auto.create.topics.enable=false
num.partitions=1
delete.topic.enable=true
"""


class Broker:
    """The dev broker whose files live in `base`, listening on `port` (controller `port+1`)."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.libs = base / "libs"
        self.data = base / "data"
        self.log = base / "broker.log"
        self.pid_file = base / "broker.pid"

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    # -- state ---------------------------------------------------------------

    def pid(self) -> int | None:
        """The pid of our running broker, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_broker_process(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _running_port(self) -> int | None:
        """The port in server.properties: the one a running broker listens on."""
        try:
            text = (self.base / "server.properties").read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            if line.startswith("advertised.listeners="):
                port = line.rpartition(":")[2]
                return int(port) if port.isdigit() else None
        return None

    # -- start/stop ----------------------------------------------------------

    def start(self) -> bool:
        """Start the broker unless it runs already; wait until it answers.

        Returns True when this call started it, False when it was running.
        """
        pid = self.pid()
        if pid is not None:
            running_port = self._running_port()
            if running_port is not None and running_port != self.port:
                raise DevEnvError(
                    f"the dev broker is running on port {running_port}, not {self.port}; "
                    "stop it first (topicflow dev down) or set TOPICFLOW_DEV_KAFKA_PORT back"
                )
            # Ours, and maybe still starting (an interrupted `up`): wait for it.
            self._wait_ready(pid)
            return False
        for port in (self.port, self.port + 1):
            if _port_open(port):
                raise DevEnvError(
                    f"port {port} on {HOST} is used by another process, not the dev broker; "
                    "stop it or set TOPICFLOW_DEV_KAFKA_PORT"
                )
        java = _require("java", "openjdk-17-jre-headless")
        self.base.mkdir(parents=True, exist_ok=True)
        self._fetch_jars()
        properties = self.base / "server.properties"
        properties.write_text(_server_properties(self.port, self.data))
        log4j = self.base / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        self._format(java, properties)
        pid = self._spawn(java, properties, log4j)
        self.pid_file.write_text(f"{pid}\n")
        self._wait_ready(pid)
        return True

    def stop(self) -> bool:
        """Stop the broker: SIGTERM, then SIGKILL after 30 s. False if it was not running."""
        pid = self.pid()
        if pid is None:
            return False
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _is_broker_process(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_broker_process(pid):
            _signal(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _is_broker_process(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
        # A killed JVM can still hold its listening sockets for a moment after
        # it looks gone; a start right after this stop must find them free.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (_port_open(self.port) or _port_open(self.port + 1)):
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return True

    # -- steps ---------------------------------------------------------------

    def _fetch_jars(self) -> None:
        # libs/ keeps a copy of the pom it was fetched with: a bumped Kafka
        # version in kafka-pom.xml fetches again instead of running old jars.
        fetched_with = self.libs / POM.name
        if fetched_with.exists() and fetched_with.read_bytes() == POM.read_bytes():
            return
        mvn = _require("mvn", "maven")
        # Fetch into a scratch folder and rename it at the end, so an
        # interrupted fetch never leaves a half-filled libs/ that looks complete.
        scratch = self.base / f"libs.fetching-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        maven_log = self.base / "maven.log"
        try:
            with maven_log.open("wb") as out:
                # A copy of the pom next to the output, so Maven writes nothing
                # into the installed package.
                pom = scratch / "pom.xml"
                shutil.copyfile(POM, pom)
                code = subprocess.run(
                    [
                        mvn,
                        "-q",
                        "-B",
                        "-f",
                        str(pom),
                        "dependency:copy-dependencies",
                        f"-DoutputDirectory={scratch / 'libs'}",
                        "-DincludeScope=runtime",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    check=False,
                    cwd=scratch,
                ).returncode
            if code != 0:
                raise DevEnvError(
                    f"Maven could not fetch the Kafka jars (exit code {code}); see {maven_log}"
                )
            shutil.copyfile(POM, scratch / "libs" / POM.name)
            shutil.rmtree(self.libs, ignore_errors=True)
            (scratch / "libs").rename(self.libs)
            maven_log.unlink()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _format(self, java: str, properties: Path) -> None:
        if (self.data / "meta.properties").exists():
            return
        result = subprocess.run(
            [
                java,
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            with self.log.open("w") as out:
                out.write(result.stdout + result.stderr)
            # Leave no half-formatted log directory behind: the next start formats again.
            shutil.rmtree(self.data, ignore_errors=True)
            raise DevEnvError(
                f"formatting the Kafka log directory failed (exit code {result.returncode}); "
                f"see {self.log}"
            )

    def _spawn(self, java: str, properties: Path, log4j: Path) -> int:
        command = [
            java,
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.libs}/*",
            _MAIN_CLASS,
            str(properties),
        ]
        # A shell puts the JVM in the background and exits at once, so the broker
        # is never our child: it outlives us, and we never have to reap it (nor
        # does Python warn about a child still running when we exit). The new
        # session keeps the terminal's Ctrl-C away from it.
        launcher = subprocess.run(
            [
                "/bin/sh",
                "-c",
                'log=$1; shift; "$@" >"$log" 2>&1 </dev/null & echo $!',
                "sh",
                str(self.log),
                *command,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.base,
            start_new_session=True,
        )
        try:
            return int(launcher.stdout.strip())
        except ValueError:
            raise DevEnvError(
                f"could not launch the Kafka broker: {launcher.stderr.strip() or 'no pid'}"
            ) from None

    def _wait_ready(self, pid: int) -> None:
        """Wait until the broker answers a metadata request listing itself."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not _is_broker_process(pid):
                self.pid_file.unlink(missing_ok=True)
                raise DevEnvError(f"the Kafka broker exited during start-up; see {self.log}")
            # Cheap TCP probe first: librdkafka would log connection errors.
            if _port_open(self.port) and _answers_metadata(self.bootstrap_servers):
                return
            time.sleep(0.2)
        raise DevEnvError(f"Kafka did not start within {START_TIMEOUT_S:.0f} s; see {self.log}")


def _answers_metadata(bootstrap_servers: str) -> bool:
    from confluent_kafka.admin import AdminClient

    # log_level 0: the probe fails by design while the broker starts; no noise.
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:  # KafkaException while not ready; any failure means "not yet"
        return False
    # A KRaft broker answers before it has registered; then it lists no broker.
    return bool(metadata.brokers)


def _cluster_id() -> str:
    """A random cluster id as Kafka writes it: 16 bytes, URL-safe base64, no padding."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka avoids a leading "-" too: the argument parser would take it for an option.
        if not cluster_id.startswith("-"):
            return cluster_id


def _is_broker_process(pid: int) -> bool:
    """True if `pid` is the broker's JVM and it has not finished exiting.

    Checking the command line, not just the pid, guards against a pid reused
    by an unrelated process after a reboot or a container restart.
    """
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        # The state follows the parenthesised command name.
        if stat.rpartition(")")[2].split()[:1] == ["Z"]:
            # The main thread has exited (and its command line is gone), but
            # other threads may still be shutting down and holding the ports:
            # the JVM is gone only once the main thread is the last one left.
            return len(os.listdir(proc / "task")) > 1
        return _MAIN_CLASS.encode() in (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def _signal(pid: int, sig: signal.Signals) -> None:
    # It may have exited since we looked.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _require(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise DevEnvError(f"{program} not found on PATH; install the Debian package {package}")
    return path
