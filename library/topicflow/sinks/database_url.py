"""PostgreSQL database URLs (Heroku's `DATABASE_URL`), parsed by libpq itself.

Heroku Postgres puts `postgres://user:password@host:port/dbname` in
`DATABASE_URL` (and `HEROKU_POSTGRESQL_<COLOR>_URL`). libpq reads such URLs
(`postgres://` or `postgresql://`, percent-encoding, `[IPv6]` hosts, several
hosts, any connection parameter in the query string) and key/value strings
(`host=... dbname=...`); `DatabaseUrl.parse` hands the text to it through
psycopg (`psycopg.conninfo.conninfo_to_dict`) and adds what a stream worker
needs on top:

    >>> url = DatabaseUrl.parse("postgres://app:s3cret@db.example.com:5432/counts")
    >>> url.connect_kwargs()["sslmode"]
    'require'
    >>> url.redacted()
    'app@db.example.com:5432/counts'

SSL: `sslmode` from the URL when given, else `require` for every host but the
local ones (localhost, loopback addresses, Unix sockets, no host at all), which
get `prefer`: Heroku Postgres refuses connections without SSL, a development
server usually has no certificate.

Secrets never appear in a message, a log line or a repr: the ones libpq marks
as such (the password, `sslpassword`...) are masked by `scrub`, `redacted()`
shows `user@host:port/dbname`, and a URL libpq cannot read is refused with a
message that quotes none of it.

Settings a connection attempt would only report as a failure (retried for
ever) are checked here instead: an unknown `sslmode`, a port that is no port.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from topicflow.errors import ConfigError
from topicflow.extras import missing_extra

__all__ = ["DEFAULT_PORT", "SSL_MODES", "DatabaseUrl", "database_url_from_env", "redacted"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 5432
SCHEMES = ("postgres", "postgresql")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")

_EXPECTED = "expected postgres://user:password@host:port/dbname"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,30})://")
# What libpq's messages may quote and we may show: a parameter's name, a single
# punctuation mark ("=", "]"). Anything else quoted (the URL itself, a
# percent-encoded token) may hold the password.
_QUOTED = re.compile(r'"([^"]*)"')
_SHOWN = re.compile(r"[a-z_]{1,40}|[^\w\s]")
_HEROKU_URL = re.compile(r"HEROKU_POSTGRESQL(?:_[A-Z0-9_]+)?_URL")


@dataclass(frozen=True)
class DatabaseUrl:
    """libpq's connection parameters of a URL. `repr` and `str` show no secret."""

    params: dict[str, str] = field(repr=False)

    @staticmethod
    def parse(url: str, variable: str = "database URL") -> DatabaseUrl:
        """Parse a PostgreSQL URL (or libpq key/value string); ConfigError without any
        part of it but its scheme if libpq cannot read it.

        `variable` names the setting in messages, e.g. "DATABASE_URL".
        """
        params = _parse(url.strip(), variable)
        sslmode = params.get("sslmode") or _default_sslmode(params.get("host", ""))
        if sslmode not in SSL_MODES:
            raise ConfigError(
                f"{variable}: unknown sslmode {sslmode!r}; use one of {', '.join(SSL_MODES)}"
            )
        return DatabaseUrl({**params, "sslmode": sslmode})

    @property
    def host(self) -> str | None:
        return self.params.get("host") or None

    @property
    def port(self) -> int:
        """The (first) port: libpq's default when the URL names none."""
        first = self.params.get("port", "").split(",")[0]
        return int(first) if first else DEFAULT_PORT

    @property
    def user(self) -> str | None:
        return self.params.get("user") or None

    @property
    def password(self) -> str | None:
        return self.params.get("password") or None

    @property
    def dbname(self) -> str | None:
        return self.params.get("dbname") or None

    @property
    def sslmode(self) -> str:
        return self.params["sslmode"]

    @property
    def is_local(self) -> bool:
        return _is_local(self.params.get("host", ""))

    def connect_kwargs(self, **defaults: Any) -> dict[str, Any]:
        """psycopg.connect's keyword arguments; `defaults` (e.g. connect_timeout=5) apply
        unless the URL sets them."""
        return {**defaults, **self.params}

    def redacted(self) -> str:
        """`user@host:port/dbname`: what messages and logs show."""
        return _display(self.params)

    def scrub(self, text: str) -> str:
        """`text` with every occurrence of a secret (the password...) masked."""
        secrets = [self.params.get(name) for name in _secret_parameters()]
        # Longest first: a secret may contain another (the password in sslpassword).
        for secret in sorted(filter(None, secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __str__(self) -> str:
        return self.redacted()


def redacted(url: str) -> str:
    """`user@host:port/dbname` of a database URL, without the password (or anything else
    from the query string). Works on any string: what cannot be shown safely is not."""
    _libpq()  # a missing extra is not a malformed URL
    try:
        return _display(_parse(url.strip(), "database URL"))
    except ConfigError:
        return "<malformed database URL>"


def database_url_from_env(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, URL) of the PostgreSQL database to use: `DATABASE_URL` if set, else the
    single `HEROKU_POSTGRESQL_*_URL` (Heroku's name for an attached database); None if
    neither is set."""
    url = environ.get("DATABASE_URL", "").strip()
    if url:
        return "DATABASE_URL", url
    heroku = sorted(
        name for name, value in environ.items() if _HEROKU_URL.fullmatch(name) and value.strip()
    )
    if len(heroku) > 1:
        raise ConfigError(
            f"several PostgreSQL databases are attached ({', '.join(heroku)}); "
            "set DATABASE_URL to the one to use"
        )
    if heroku:
        return heroku[0], environ[heroku[0]].strip()
    return None


# -- libpq ------------------------------------------------------------------------


def _parse(url: str, variable: str) -> dict[str, str]:
    """libpq's parameters of `url`. Raises ConfigError with no part of the URL in the
    message but its scheme and parameter names: a malformed URL may put the password
    anywhere."""
    conninfo_to_dict, malformed = _libpq()
    scheme = _SCHEME.match(url)
    if scheme is not None:
        if scheme[1] not in SCHEMES:
            raise ConfigError(f"{variable}: unknown scheme {scheme[1]!r}; {_EXPECTED}")
        # `user:pa/ss@host`: libpq would read an unencoded '/' in the password as
        # the end of the host, and show the rest as a port and a database name.
        path = url[scheme.end() :].partition("/")[2]
        if "@" in path.partition("?")[0]:
            raise ConfigError(
                f"{variable} is malformed: '@' after the host; "
                "percent-encode '/' and '@' in the user name and password"
            )
    elif not url:
        raise ConfigError(f"{variable} is empty; {_EXPECTED}")
    elif "=" not in url:
        raise ConfigError(f"{variable} is not a URL; {_EXPECTED}")
    try:
        params = conninfo_to_dict(url)
    except malformed as error:
        reason = _QUOTED.sub(_quoted, str(error).strip().splitlines()[0])
        raise ConfigError(f"{variable} is malformed: {reason}; {_EXPECTED}") from None
    for port in str(params.get("port", "")).split(","):
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError(f"{variable}: the port must be a number from 1 to 65535")
    return {name: str(value) for name, value in params.items()}


def _libpq() -> tuple[Callable[[str], dict[str, Any]], type[Exception]]:
    """libpq's URL parser and the error it raises; psycopg is the `postgres` extra."""
    try:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict
    except ModuleNotFoundError as error:
        raise missing_extra("postgres", "a PostgreSQL database URL", error) from error
    return conninfo_to_dict, ProgrammingError


def _quoted(match: re.Match[str]) -> str:
    return match[0] if _SHOWN.fullmatch(match[1]) else '"…"'


@cache
def _secret_parameters() -> tuple[str, ...]:
    """The parameters libpq displays as `*` (the password, sslpassword...)."""
    import psycopg  # installed: a DatabaseUrl was parsed

    return tuple(
        option.keyword.decode()
        for option in psycopg.pq.Conninfo.get_defaults()
        if option.dispchar == b"*"
    )


def _default_sslmode(hosts: str) -> str:
    return "prefer" if _is_local(hosts) else "require"


def _is_local(hosts: str) -> bool:
    """Whether every host (libpq's comma-separated list; none: a Unix socket) is local."""
    return all(_is_local_host(host) for host in hosts.split(","))


def _is_local_host(host: str) -> bool:
    if not host or host.startswith("/") or host.lower() == "localhost":
        return True  # the default Unix socket, a socket folder, the loopback by name
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display(params: Mapping[str, Any]) -> str:
    hosts = str(params.get("host") or "")
    shown = ",".join(f"[{h}]" if ":" in h else h for h in hosts.split(",")) or "<local socket>"
    port = str(params.get("port") or DEFAULT_PORT)
    text = f"{shown}:{port}"
    if params.get("user"):
        text = f"{params['user']}@{text}"
    if params.get("dbname"):
        text = f"{text}/{params['dbname']}"
    return text
