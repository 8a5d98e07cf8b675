"""Heroku-style PostgreSQL URLs: `postgres://user:password@host:port/dbname?sslmode=...`.

Heroku Postgres puts such a URL in `DATABASE_URL` (and `HEROKU_POSTGRESQL_<COLOR>_URL`).
`DatabaseUrl.parse` turns one into psycopg's connect keyword arguments:

    >>> url = DatabaseUrl.parse("postgres://app:s3cret@db.example.com:5432/counts")
    >>> url.connect_kwargs()["sslmode"]
    'require'
    >>> url.redacted()
    'app@db.example.com:5432/counts'

SSL: `sslmode` from the query string when given, else `require` for every host
but the local ones (localhost, loopback addresses, Unix sockets), which get
`prefer`: Heroku Postgres refuses connections without SSL, a development server
usually has no certificate.

Passwords never appear in a message, a log line or a repr: `redacted(url)`
shows `user@host:port/dbname`, and errors name the setting, not its value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from topicflow.errors import ConfigError

__all__ = ["DEFAULT_PORT", "SSL_MODES", "DatabaseUrl", "redacted"]

DEFAULT_PORT = 5432
SCHEMES = ("postgres", "postgresql")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
LOCAL_HOSTS = ("localhost",)

_EXPECTED = "expected postgres://user:password@host:port/dbname"
# Query parameters whose values are secrets (besides the password).
_SECRET_PARAMS = frozenset(
    {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
)
# Parts of the URL that the query string may also set (libpq URI semantics).
_URL_PARTS = ("host", "port", "user", "password", "dbname")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,30}")


@dataclass(frozen=True)
class DatabaseUrl:
    """A parsed PostgreSQL URL. `repr` and `str` show no password."""

    host: str
    port: int
    dbname: str | None
    user: str | None
    password: str | None = field(repr=False)
    sslmode: str
    # Other libpq parameters from the query string (application_name, sslrootcert...).
    params: dict[str, str] = field(default_factory=dict, repr=False)

    @staticmethod
    def parse(url: str, variable: str = "database URL") -> DatabaseUrl:
        """Parse `postgres://` or `postgresql://` URLs; ConfigError (no secrets) if malformed.

        `variable` names the setting in messages, e.g. "DATABASE_URL".
        """
        parts = _split(url, variable)
        values: dict[str, str | None] = {
            "host": parts.host,
            "port": parts.port,
            "user": parts.user,
            "password": parts.password,
            "dbname": parts.dbname,
        }
        params: dict[str, str] = {}
        for name, value in _query(parts.query, variable):
            if name in _URL_PARTS:
                values[name] = value
            else:
                params[name] = value
        host = values["host"]
        if not host:
            raise ConfigError(f"{variable} has no host; {_EXPECTED}")
        if "," in host:
            raise ConfigError(f"{variable} names several hosts; give exactly one")
        port = _port(values["port"], variable)
        sslmode = params.pop("sslmode", None) or _default_sslmode(host)
        if sslmode not in SSL_MODES:
            raise ConfigError(
                f"{variable}: unknown sslmode {sslmode!r}; use one of {', '.join(SSL_MODES)}"
            )
        return DatabaseUrl(
            host=host,
            port=port,
            dbname=values["dbname"] or None,
            user=values["user"] or None,
            password=values["password"] or None,
            sslmode=sslmode,
            params=params,
        )

    @property
    def is_local(self) -> bool:
        return _is_local(self.host)

    def connect_kwargs(self, **defaults: Any) -> dict[str, Any]:
        """psycopg.connect's keyword arguments; `defaults` (e.g. connect_timeout=5) apply
        unless the URL's query string sets them."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.dbname is not None:
            kwargs["dbname"] = self.dbname
        if self.user is not None:
            kwargs["user"] = self.user
        if self.password is not None:
            kwargs["password"] = self.password
        kwargs["sslmode"] = self.sslmode
        kwargs.update(defaults)
        kwargs.update(self.params)
        return kwargs

    def redacted(self) -> str:
        """`user@host:port/dbname`: what messages and logs show."""
        return _display(self.user, self.host, str(self.port), self.dbname)

    def scrub(self, text: str) -> str:
        """`text` with every occurrence of the password (and other secrets) masked."""
        secrets = [self.password] + [v for k, v in self.params.items() if k in _SECRET_PARAMS]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    def __str__(self) -> str:
        return self.redacted()


def redacted(url: str) -> str:
    """`user@host:port/dbname` of a database URL, without the password (or anything else
    from the query string). Works on any string: what cannot be shown safely is not."""
    try:
        parts = _split(url, "database URL")
    except ConfigError:
        return "<malformed database URL>"
    return _display(parts.user, parts.host, parts.port or str(DEFAULT_PORT), parts.dbname)


# -- parsing ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    user: str | None
    password: str | None = field(repr=False)
    host: str | None
    port: str | None
    dbname: str | None
    query: str = field(repr=False)


def _split(url: str, variable: str) -> _Parts:
    """The URL's parts, percent-decoded. Raises ConfigError with no part of the URL in the
    message but its scheme: a malformed URL may put the password anywhere."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"{variable} is not a URL; {_EXPECTED}")
    if scheme.lower() not in SCHEMES:
        shown = f" {scheme!r}" if _SCHEME.fullmatch(scheme) else ""
        raise ConfigError(f"{variable}: unknown scheme{shown}; {_EXPECTED}")
    # The authority ends at the first '/', '?' or '#'.
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in tail:
        # `user:pa/ss@host`: an unencoded '/', '?' or '#' in the password cut the
        # authority short. Say so without showing any part of it.
        raise ConfigError(
            f"{variable} is malformed: '@' after the host; "
            "percent-encode '/', '?', '#' and '@' in the user name and password"
        )
    path, _, query = tail.partition("?")
    if "#" in path or "#" in query:
        raise ConfigError(f"{variable} is malformed: unexpected '#'; {_EXPECTED}")
    userinfo, at, hostport = netloc.rpartition("@")
    user: str | None = None
    password: str | None = None
    if at:
        raw_user, colon, raw_password = userinfo.partition(":")
        user = unquote(raw_user) or None
        password = unquote(raw_password) if colon else None
    host, port = _split_hostport(hostport, variable)
    dbname = unquote(path[1:]) if path.startswith("/") else None
    return _Parts(user, password, host, port, dbname or None, query)


def _split_hostport(hostport: str, variable: str) -> tuple[str | None, str | None]:
    if hostport.startswith("["):  # [IPv6]:port
        close = hostport.find("]")
        rest = hostport[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise ConfigError(f"{variable} is malformed: bad [IPv6] host; {_EXPECTED}")
        host, port = hostport[1:close], rest[1:]
    else:
        host, _, port = hostport.partition(":")
        host = unquote(host)  # a percent-encoded Unix socket folder
    if port and not port.isdigit():
        raise ConfigError(f"{variable} is malformed: the port is not a number; {_EXPECTED}")
    return host or None, port or None


def _query(query: str, variable: str) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(
            f"{variable} is malformed: bad query string; expected ?name=value&..."
        ) from None
    known = _libpq_parameters()
    for name, _value in pairs:
        if name not in known:
            shown = f" {name!r}" if re.fullmatch(r"[a-z_]{1,40}", name) else ""
            raise ConfigError(f"{variable}: unknown connection parameter{shown} in the query")
    return pairs


def _libpq_parameters() -> frozenset[str]:
    import psycopg

    return frozenset(o.keyword.decode() for o in psycopg.pq.Conninfo.get_defaults())


def _port(raw: str | None, variable: str) -> int:
    if not raw:
        return DEFAULT_PORT
    port = int(raw) if raw.isdigit() else 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"{variable}: the port must be a number from 1 to 65535")
    return port


def _default_sslmode(host: str) -> str:
    return "prefer" if _is_local(host) else "require"


def _is_local(host: str) -> bool:
    if host.startswith("/") or host.lower() in LOCAL_HOSTS:
        return True  # a Unix socket folder, or the loopback by name
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display(user: str | None, host: str | None, port: str, dbname: str | None) -> str:
    shown_host = f"[{host}]" if host and ":" in host else (host or "<no host>")
    text = f"{shown_host}:{port}"
    if user:
        text = f"{user}@{text}"
    if dbname:
        text = f"{text}/{dbname}"
    return text
