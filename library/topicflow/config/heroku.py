"""What Heroku's Kafka add-on puts in the environment: `KafkaUrl` and `KafkaEnv`.

An add-on's variables are named after its attachment (`KAFKA_URL`,
`HEROKU_KAFKA_GRAY_URL`...): `attachment_name` picks which one to read, then
`KafkaEnv.read` gets the URL, the topic prefix and the SSL certificates, and
`KafkaEnv.client_config` turns them into librdkafka settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from topicflow.errors import ConfigError

__all__ = ["ATTACHMENT_VARIABLE", "KafkaEnv", "KafkaUrl", "attachment_name"]


@dataclass(frozen=True, slots=True)
class KafkaUrl:
    """A parsed `KAFKA_URL`: bootstrap servers and whether they speak SSL."""

    bootstrap_servers: str
    ssl: bool

    @staticmethod
    def parse(url: str, variable: str = "KAFKA_URL") -> KafkaUrl:
        """Parse Heroku's form: comma-separated `kafka://host:port` or `kafka+ssl://host:port`."""
        hosts: list[str] = []
        schemes: set[str] = set()
        for part in (p.strip() for p in url.split(",")):
            if not part:
                continue
            split = urlsplit(part)
            if split.scheme not in ("kafka", "kafka+ssl"):
                shown = split.scheme or part.split(":", 1)[0]
                raise ConfigError(
                    f"{variable}: unknown scheme {shown!r}; use kafka://host:port "
                    "or kafka+ssl://host:port, comma-separated"
                )
            try:
                port = split.port
            except ValueError:
                port = None
            if not split.hostname or port is None:
                raise ConfigError(
                    f"{variable}: {split.scheme}:// entry without host:port; "
                    "expected e.g. kafka+ssl://broker1.example.com:9096"
                )
            schemes.add(split.scheme)
            hosts.append(f"{split.hostname}:{port}")
        if not hosts:
            raise ConfigError(f"{variable} is empty; unset it to use the embedded broker")
        if len(schemes) > 1:
            raise ConfigError(f"{variable} mixes kafka:// and kafka+ssl:// entries; use one scheme")
        return KafkaUrl(",".join(hosts), ssl=schemes == {"kafka+ssl"})


@dataclass(frozen=True)
class KafkaEnv:
    """What Heroku's Kafka add-on puts in the environment."""

    url: KafkaUrl | None
    prefix: str
    trusted_cert: str | None
    client_cert: str | None
    client_cert_key: str | None

    @staticmethod
    def read(environ: Mapping[str, str], base: str | None = None) -> KafkaEnv:
        """The add-on's variables under `base` (`KAFKA`: `KAFKA_URL`...), or under the
        attachment the environment names (see `attachment_name`)."""
        base = base or attachment_name(environ)
        raw_url = environ.get(f"{base}_URL", "").strip()
        url = KafkaUrl.parse(raw_url, f"{base}_URL") if raw_url else None
        return KafkaEnv(
            url=url,
            prefix=environ.get(f"{base}_PREFIX", ""),
            trusted_cert=environ.get(f"{base}_TRUSTED_CERT") or None,
            client_cert=environ.get(f"{base}_CLIENT_CERT") or None,
            client_cert_key=environ.get(f"{base}_CLIENT_CERT_KEY") or None,
        )

    def client_config(self) -> dict[str, Any]:
        if self.url is None or not self.url.ssl:
            return {}
        conf: dict[str, Any] = {
            "security.protocol": "ssl",
            # Heroku's broker certificates carry no host names: verify the chain only.
            "ssl.endpoint.identification.algorithm": "none",
        }
        if self.trusted_cert:
            conf["ssl.ca.pem"] = self.trusted_cert
        if self.client_cert:
            conf["ssl.certificate.pem"] = self.client_cert
        if self.client_cert_key:
            conf["ssl.key.pem"] = self.client_cert_key
        return conf


# Heroku names an add-on's variables after its attachment: `KAFKA_URL` for the
# default one, `HEROKU_KAFKA_GRAY_URL` for an attachment named HEROKU_KAFKA_GRAY.
ATTACHMENT_VARIABLE = "TOPICFLOW_KAFKA_ATTACHMENT"


def attachment_name(environ: Mapping[str, str]) -> str:
    """Which attachment's variables to read, in this order:

    1. `TOPICFLOW_KAFKA_ATTACHMENT`, e.g. `HEROKU_KAFKA_GRAY` (its `_URL` must be set);
    2. the original Java example's scheme: `HEROKU_KAFKA` plus `ADDON_SUFFIX`, when
       `ADDON_SUFFIX` is set;
    3. Heroku's default attachment, `KAFKA`, when `KAFKA_URL` is set;
    4. `HEROKU_KAFKA`, when only `HEROKU_KAFKA_URL` is set.
    With none of them, `KAFKA` (unset: the embedded broker).
    """
    explicit = environ.get(ATTACHMENT_VARIABLE, "").strip()
    if explicit:
        if not environ.get(f"{explicit}_URL", "").strip():
            raise ConfigError(
                f"{ATTACHMENT_VARIABLE}={explicit} but {explicit}_URL is not set; "
                "check the attachment's name with `heroku addons`"
            )
        return explicit
    suffix = environ.get("ADDON_SUFFIX", "").strip()
    if suffix:
        base = f"HEROKU_KAFKA{suffix}"
        if not environ.get(f"{base}_URL", "").strip():
            raise ConfigError(f"ADDON_SUFFIX={suffix} but {base}_URL is not set")
        return base
    if environ.get("KAFKA_URL", "").strip():
        return "KAFKA"
    if environ.get("HEROKU_KAFKA_URL", "").strip():
        return "HEROKU_KAFKA"
    return "KAFKA"
