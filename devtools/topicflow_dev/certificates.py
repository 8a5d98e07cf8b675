"""Test certificates for the Heroku-like dev broker, made with the `openssl` command.

Apache Kafka on Heroku gives an app three PEM texts: `KAFKA_TRUSTED_CERT`
(the cluster's own CA), `KAFKA_CLIENT_CERT` and `KAFKA_CLIENT_CERT_KEY` (the
app's certificate, for mutual TLS). Its broker certificates name no host, so
clients verify the chain but not the host name. `ensure()` makes the same
kind of material once, in one folder:

    ca.pem, ca.key                  the cluster CA: signs the broker's and the app's certificates
    next-ca.pem, next-ca.key        a second CA, as during a CA rotation (both trusted)
    server.pem, server.key          the broker's certificate: CN=kafka-broker, no SAN
    server-keystore.pem             key + certificate chain, Kafka's PEM keystore
    broker-truststore.pem           both CAs: whom the broker accepts client certificates from
    client.pem, client.key          the app's certificate: CN=app-topicflow
    unknown-ca.pem, unknown-ca.key  a CA nobody trusts
    unknown-client.pem/.key         a certificate with the app's subject, signed by that CA

Keys are unencrypted PKCS#8 PEM files with mode 0600 (the folder is 0700).
The set is made in a scratch folder and renamed into place, so a half-made
set is never used; it is made again when a file is missing or a certificate
expires within a day.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from topicflow_dev.errors import DevEnvError

__all__ = ["BROKER_CN", "CLIENT_CN", "Certificates", "ensure"]

BROKER_CN = "kafka-broker"
"""The broker certificate's only name: no host name anywhere, like Heroku's."""
CLIENT_CN = "app-topicflow"
"""The common name of the app's client certificate (and of the untrusted one)."""

_ORGANIZATION = "topicflow dev"
_VALID_DAYS = 3650
# A set whose certificates expire sooner than this is made again.
_MIN_REMAINING_S = 86_400

# Only the sections named by -config/-extensions are used: nothing comes from
# the system's openssl.cnf, so the certificates are the same on every machine.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


@dataclass(frozen=True)
class Certificates:
    """The files of one certificate set (see the module's docstring)."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def next_ca_cert(self) -> Path:
        return self.folder / "next-ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_keystore(self) -> Path:
        return self.folder / "server-keystore.pem"

    @property
    def broker_truststore(self) -> Path:
        return self.folder / "broker-truststore.pem"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    @property
    def unknown_client_cert(self) -> Path:
        return self.folder / "unknown-client.pem"

    @property
    def unknown_client_key(self) -> Path:
        return self.folder / "unknown-client.key"

    def complete(self) -> bool:
        """True if every file is there and no certificate expires within a day."""
        names = [*_CERTIFICATES, *(f"{name}.key" for name in _KEYED), *_BUNDLES]
        if not all((self.folder / name).is_file() for name in names):
            return False
        return all(_valid_for(self.folder / name, _MIN_REMAINING_S) for name in _CERTIFICATES)


# name.pem (and name.key) of every certificate, in the order they are made.
_CERTIFICATES = (
    "ca.pem",
    "next-ca.pem",
    "server.pem",
    "client.pem",
    "unknown-ca.pem",
    "unknown-client.pem",
)
_KEYED = tuple(name.removesuffix(".pem") for name in _CERTIFICATES)
_BUNDLES = ("server-keystore.pem", "broker-truststore.pem")


def ensure(folder: Path) -> tuple[Certificates, bool]:
    """The certificate set in `folder`, made now unless complete; True if made now.

    Callers serialise calls (the dev lock): two concurrent calls could both
    make a set, and the second rename would fail.
    """
    certificates = Certificates(folder)
    if certificates.complete():
        return certificates, False
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevEnvError("openssl not found on PATH; install the Debian package openssl")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.with_name(f"{folder.name}.making-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    try:
        _make(openssl, scratch)
        # Replace the whole set at once: certificates of two sets never mix.
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return certificates, True


def _make(openssl: str, folder: Path) -> None:
    cnf = folder / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)

    def run(*args: str) -> None:
        result = subprocess.run(
            [openssl, *args],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DevEnvError(
                f"openssl {args[0]} failed (exit code {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def key(name: str) -> None:
        path = folder / f"{name}.key"
        run(
            "genpkey",
            "-quiet",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            str(path),
        )
        path.chmod(0o600)

    def ca(name: str, common_name: str) -> None:
        key(name)
        run(
            "req",
            "-x509",
            "-new",
            "-config",
            str(cnf),
            "-extensions",
            "ca",
            "-key",
            f"{name}.key",
            "-subj",
            f"/O={_ORGANIZATION}/CN={common_name}",
            "-sha256",
            "-days",
            str(_VALID_DAYS),
            "-set_serial",
            _serial(),
            "-out",
            f"{name}.pem",
        )

    def leaf(name: str, common_name: str, kind: str, issuer: str) -> None:
        key(name)
        csr = f"{name}.csr"
        run(
            "req",
            "-new",
            "-config",
            str(cnf),
            "-key",
            f"{name}.key",
            "-subj",
            f"/O={_ORGANIZATION}/CN={common_name}",
            "-out",
            csr,
        )
        run(
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            f"{issuer}.pem",
            "-CAkey",
            f"{issuer}.key",
            "-extfile",
            str(cnf),
            "-extensions",
            kind,
            "-sha256",
            "-days",
            str(_VALID_DAYS),
            "-set_serial",
            _serial(),
            "-out",
            f"{name}.pem",
        )
        (folder / csr).unlink()

    ca("ca", "topicflow dev cluster CA")
    ca("next-ca", "topicflow dev cluster CA (next)")
    leaf("server", BROKER_CN, "server", "ca")
    leaf("client", CLIENT_CN, "client", "ca")
    ca("unknown-ca", "unknown CA")
    leaf("unknown-client", CLIENT_CN, "client", "unknown-ca")
    cnf.unlink()

    def text(name: str) -> str:
        return (folder / name).read_text()

    keystore = folder / "server-keystore.pem"
    keystore.touch(mode=0o600)
    keystore.write_text(text("server.key") + text("server.pem") + text("ca.pem"))
    (folder / "broker-truststore.pem").write_text(text("ca.pem") + text("next-ca.pem"))


def _serial() -> str:
    # Random, positive, well within the 20 bytes RFC 5280 allows.
    return f"0x{secrets.token_hex(16)}"


def _valid_for(certificate: Path, seconds: int) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False  # ensure() then says openssl is missing
    result = subprocess.run(
        [openssl, "x509", "-noout", "-checkend", str(seconds), "-in", str(certificate)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return result.returncode == 0
