"""A second dev broker configured like Apache Kafka on Heroku, for integration tests.

Heroku's Kafka add-on differs from the plain dev broker (`topicflow_dev`) in
ways an application only meets in production:

- its brokers speak TLS only (`KAFKA_URL=kafka+ssl://host:port,...`), with
  certificates signed by the cluster's own CA (`KAFKA_TRUSTED_CERT`) that name
  no host, so clients must not verify host names;
- clients authenticate with a certificate (`KAFKA_CLIENT_CERT`,
  `KAFKA_CLIENT_CERT_KEY`): mutual TLS;
- on the multi-tenant plans, ACLs allow an app only Read, Write and Describe
  on the topics and consumer groups whose names start with its `KAFKA_PREFIX`:
  it cannot create topics (`heroku kafka:topics:create` does), use
  transactional ids (so no exactly-once) or do anything on the cluster.

`start_heroku_kafka()` runs such a broker (KRaft, single node) on loopback,
idempotently, with its files in `<dev dir>/heroku-kafka/`:

    certs/             the CAs and certificates (topicflow_dev.certificates)
    data/              the log directory, ACLs included
    server.properties  rewritten on every start
    broker.log         stdout/stderr of the current run
    broker.pid         pid of the running broker

It shares the plain broker's jars (`<dev dir>/kafka/libs`) and its process
handling (`topicflow_dev.kafka.Broker`). Ports: the SSL client listener
19192 (`TOPICFLOW_DEV_HEROKU_KAFKA_PORT`), the controller the next port, and
an "operator" listener the one after: PLAINTEXT, where every client is a super
user, for what Heroku's CLI does (create topics, grant ACLs). The broker keeps
running after the process that started it exits; `topicflow dev down` leaves
it alone, `stop_heroku_kafka()` stops it.

Principals: a client certificate's subject `CN=app-topicflow,O=...` becomes
`User:app-topicflow`. The controller and operator listeners are PLAINTEXT, so
their principal is `User:ANONYMOUS`: the broker's own requests to its
controller (registration, heartbeats) and inter-broker traffic (on the
operator listener) need it to be a super user, and so does the operator.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

# Where the typed modules define them (confluent_kafka.admin re-exports them untyped).
from confluent_kafka.admin._acl import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
)
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.cimpl import NewTopic

from topicflow_dev import _broker, _locked, _port, dev_dir
from topicflow_dev import certificates as certs
from topicflow_dev.errors import DevEnvError
from topicflow_dev.kafka import _LOG4J2, HOST, Broker, _port_open, _require, _server_properties

__all__ = [
    "CLIENT_PRINCIPAL",
    "DEFAULT_PORT",
    "PORT_VARIABLE",
    "HerokuKafka",
    "start_heroku_kafka",
    "stop_heroku_kafka",
]

DEFAULT_PORT = 19192
"""The SSL client listener; the controller listens on the next port, the operator after it."""
PORT_VARIABLE = "TOPICFLOW_DEV_HEROKU_KAFKA_PORT"

CLIENT_PRINCIPAL = f"User:{certs.CLIENT_CN}"
"""The principal of the app's client certificate (`KAFKA_CLIENT_CERT`)."""

# What Heroku's multi-tenant plans grant an app on its prefix, and nothing else.
TOPIC_OPERATIONS = ("READ", "WRITE", "DESCRIBE")
GROUP_OPERATIONS = ("READ", "WRITE", "DESCRIBE", "DELETE")

_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HerokuKafka:
    """The running Heroku-like broker: what an app's config vars say, and an operator's access."""

    kafka_url: str
    """`kafka+ssl://127.0.0.1:19192`: Heroku's KAFKA_URL form."""
    operator_bootstrap: str
    """`127.0.0.1:19194`: a PLAINTEXT listener where every client is a super user."""
    # The PEM texts are left out of repr(): long, and keys are secrets (if test ones).
    trusted_cert: str = field(repr=False)
    """The cluster CA's certificate (PEM): KAFKA_TRUSTED_CERT."""
    client_cert: str = field(repr=False)
    """The app's certificate (PEM), signed by the cluster CA: KAFKA_CLIENT_CERT."""
    client_cert_key: str = field(repr=False)
    """Its private key (unencrypted PKCS#8 PEM): KAFKA_CLIENT_CERT_KEY."""
    next_ca_cert: str = field(repr=False)
    """A second CA (PEM), as in a CA rotation: the broker trusts client
    certificates it signs, but its own certificate is signed by `trusted_cert`'s CA."""
    unknown_ca_client_cert: str = field(repr=False)
    """A certificate with the app's subject, signed by a CA the broker does not trust."""
    unknown_ca_client_cert_key: str = field(repr=False)
    """Its private key."""
    client_principal: str = CLIENT_PRINCIPAL
    """`User:app-topicflow`: whom `grant_prefix` grants by default."""

    @property
    def bootstrap_servers(self) -> str:
        """`127.0.0.1:19192`, the SSL listener as confluent-kafka's `bootstrap.servers`."""
        return self.kafka_url.removeprefix("kafka+ssl://")

    def env(self, prefix: str) -> dict[str, str]:
        """Exactly the config vars Heroku sets on an app attached to this cluster."""
        return {
            "KAFKA_URL": self.kafka_url,
            "KAFKA_TRUSTED_CERT": self.trusted_cert,
            "KAFKA_CLIENT_CERT": self.client_cert,
            "KAFKA_CLIENT_CERT_KEY": self.client_cert_key,
            "KAFKA_PREFIX": prefix,
        }

    # -- operator: what `heroku kafka:...` does -------------------------------------

    def create_topics(
        self,
        names: Iterable[str],
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create topics (one replica each) and wait until the broker lists them."""
        wanted = list(names)
        if not wanted:
            return
        admin = self._admin()
        futures = admin.create_topics(
            [NewTopic(name, partitions, 1, config=dict(config or {})) for name in wanted],
            operation_timeout=_TIMEOUT_S,
        )
        for future in futures.values():
            future.result(_TIMEOUT_S)
        deadline = time.monotonic() + _TIMEOUT_S
        while not set(wanted) <= set(admin.list_topics(timeout=_TIMEOUT_S).topics):
            if time.monotonic() > deadline:
                raise DevEnvError(f"topics {sorted(wanted)} not listed after their creation")
            time.sleep(0.1)

    def delete_topics(self, names: Iterable[str]) -> None:
        """Delete topics; those that do not exist are skipped."""
        wanted = list(names)
        if not wanted:
            return
        admin = self._admin()
        futures = admin.delete_topics(wanted, operation_timeout=_TIMEOUT_S)
        for future in futures.values():
            try:
                future.result(_TIMEOUT_S)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise

    def grant_prefix(self, prefix: str, principal: str | None = None) -> None:
        """Allow `principal` (default: the app's) what Heroku allows an app on its prefix.

        PREFIXED ACLs from any host: Read, Write, Describe on the topics and
        Read, Write, Describe, Delete on the consumer groups whose names start
        with `prefix`. No other ACL exists, so everything else is denied.
        """
        principal = principal or self.client_principal
        bindings = [AclBinding(*acl) for acl in _prefix_acls(prefix, principal)]
        admin = self._admin()  # kept alive until the futures are done
        for future in admin.create_acls(bindings).values():
            future.result(_TIMEOUT_S)

    def revoke_prefix(self, prefix: str, principal: str | None = None) -> None:
        """Delete the ACLs `grant_prefix` created."""
        principal = principal or self.client_principal
        filters = [AclBindingFilter(*acl) for acl in _prefix_acls(prefix, principal)]
        admin = self._admin()
        for future in admin.delete_acls(filters).values():
            future.result(_TIMEOUT_S)

    def _admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.operator_bootstrap})


_Acl = tuple[ResourceType, str, ResourcePatternType, str, str, AclOperation, AclPermissionType]


def _prefix_acls(prefix: str, principal: str) -> Iterator[_Acl]:
    """The arguments of AclBinding/AclBindingFilter for `grant_prefix`'s ACLs."""
    if not prefix:
        raise DevEnvError("an empty prefix would grant every topic and group")
    for restype, operations in (
        (ResourceType.TOPIC, TOPIC_OPERATIONS),
        (ResourceType.GROUP, GROUP_OPERATIONS),
    ):
        for operation in operations:
            yield (
                restype,
                prefix,
                ResourcePatternType.PREFIXED,
                principal,
                "*",
                AclOperation[operation],
                AclPermissionType.ALLOW,
            )


def start_heroku_kafka() -> HerokuKafka:
    """Start the broker unless it runs (making certificates if need be); wait until it answers."""
    with _locked():
        broker = _heroku_broker()
        broker.start()
        # Under the lock: no other process is making the certificates again.
        return broker.describe()


def stop_heroku_kafka() -> bool:
    """Stop the broker (SIGTERM, SIGKILL after 30 s); True if it was running."""
    with _locked():
        return _heroku_broker().stop()


def _heroku_broker() -> _HerokuBroker:
    port = _port(PORT_VARIABLE, DEFAULT_PORT)
    if port > 65533:
        raise DevEnvError(f"{PORT_VARIABLE} must be at most 65533: the next two ports are used too")
    return _HerokuBroker(dev_dir() / "heroku-kafka", port)


class _HerokuBroker(Broker):
    """`Broker` with this module's listeners and security; its files in `base`."""

    def __init__(self, base: Path, port: int) -> None:
        super().__init__(base, port)
        # The plain broker's jars: fetched once, by the plain broker's code.
        self.libs = _broker().libs
        self.certs_dir = base / "certs"

    @property
    def operator_port(self) -> int:
        return self.port + 2

    @property
    def bootstrap_servers(self) -> str:
        # What Broker._wait_ready asks for metadata: the PLAINTEXT operator listener.
        return f"{HOST}:{self.operator_port}"

    def describe(self) -> HerokuKafka:
        files = certs.Certificates(self.certs_dir)

        def text(path: Path) -> str:
            return path.read_text()

        return HerokuKafka(
            kafka_url=f"kafka+ssl://{HOST}:{self.port}",
            trusted_cert=text(files.ca_cert),
            client_cert=text(files.client_cert),
            client_cert_key=text(files.client_key),
            operator_bootstrap=self.bootstrap_servers,
            next_ca_cert=text(files.next_ca_cert),
            unknown_ca_client_cert=text(files.unknown_client_cert),
            unknown_ca_client_cert_key=text(files.unknown_client_key),
        )

    def start(self) -> bool:
        """Start unless running; True if this call started it.

        A running broker is restarted when its certificates had to be made
        again (it would still present the old ones).
        """
        self.base.mkdir(parents=True, exist_ok=True)
        _, made = certs.ensure(self.certs_dir)
        pid = self.pid()
        if pid is not None:
            running = self._running_port()
            if running is not None and running != self.port:
                raise DevEnvError(
                    f"the Heroku-like dev broker is running on port {running}, not {self.port}; "
                    f"stop it first (stop_heroku_kafka()) or set {PORT_VARIABLE} back"
                )
            if not made:
                self._wait_ready(pid)
                return False
            self.stop()
        for port in (self.port, self.port + 1, self.operator_port):
            if _port_open(port):
                raise DevEnvError(
                    f"port {port} on {HOST} is used by another process, not the Heroku-like "
                    f"dev broker; stop it or set {PORT_VARIABLE}"
                )
        java = _require("java", "openjdk-17-jre-headless")
        _broker().base.mkdir(parents=True, exist_ok=True)
        # Maven fetches into the plain broker's folder (a no-op once done).
        _broker()._fetch_jars()
        properties = self.base / "server.properties"
        properties.write_text(self._properties())
        log4j = self.base / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        self._format(java, properties)
        pid = self._spawn(java, properties, log4j)
        self.pid_file.write_text(f"{pid}\n")
        self._wait_ready(pid)
        return True

    def stop(self) -> bool:
        stopped = super().stop()
        # Broker.stop waits for the client and controller ports only.
        deadline = time.monotonic() + 5
        while stopped and time.monotonic() < deadline and _port_open(self.operator_port):
            time.sleep(0.1)
        return stopped

    def _running_port(self) -> int | None:
        """The SSL port in server.properties: the one a running broker listens on."""
        try:
            text = (self.base / "server.properties").read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            if line.startswith("advertised.listeners="):
                for listener in line.partition("=")[2].split(","):
                    if listener.startswith("SSL://"):
                        port = listener.rpartition(":")[2]
                        return int(port) if port.isdigit() else None
        return None

    def _properties(self) -> str:
        """The plain dev broker's settings, with this broker's listeners and security."""
        controller = self.port + 1
        files = certs.Certificates(self.certs_dir)
        overrides = {
            "controller.quorum.voters": f"1@{HOST}:{controller}",
            "listeners": (
                f"SSL://{HOST}:{self.port},CONTROLLER://{HOST}:{controller},"
                f"OPERATOR://{HOST}:{self.operator_port}"
            ),
            "advertised.listeners": f"SSL://{HOST}:{self.port},OPERATOR://{HOST}:{self.operator_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "OPERATOR",
            "listener.security.protocol.map": "SSL:SSL,CONTROLLER:PLAINTEXT,OPERATOR:PLAINTEXT",
        }
        lines = ["# Written by topicflow_dev.heroku_broker on every start; edits are lost."]
        # The plain dev broker's settings (replication factor 1, no rebalance
        # delay, no auto-creation...), with the listener lines replaced.
        for line in _server_properties(self.port, self.data).splitlines():
            if line.startswith("#") and "Written by" in line:
                continue
            name = line.partition("=")[0]
            lines.append(f"{name}={overrides.pop(name)}" if name in overrides else line)
        lines.extend(f"{name}={value}" for name, value in overrides.items())
        lines.append(
            f"""\
# -- Like Apache Kafka on Heroku ------------------------------------------------
# TLS with the cluster's own CA; clients must present a certificate it signed.
ssl.client.auth=required
ssl.keystore.type=PEM
ssl.keystore.location={files.server_keystore}
ssl.truststore.type=PEM
ssl.truststore.location={files.broker_truststore}
# `CN=app-topicflow,O=topicflow dev` is the principal User:app-topicflow.
ssl.principal.mapping.rules=RULE:^CN=([^,]+),.*$/$1/,RULE:^CN=([^,]+)$/$1/,DEFAULT
# Nothing is allowed without an ACL, except to super users: User:ANONYMOUS is
# whoever connects to the PLAINTEXT controller and operator listeners, i.e.
# the broker itself and the operator (never an SSL client, whose principal
# comes from its certificate).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ANONYMOUS"""
        )
        return "\n".join(lines) + "\n"
