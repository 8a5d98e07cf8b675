"""Heroku-style database URLs (parsed by libpq: what is checked here is what topicflow adds
on top: SSL by default, secrets kept out of messages, settings checked before any connection
attempt) and which database the environment names."""

from __future__ import annotations

import pytest

from topicflow.errors import ConfigError
from topicflow.sinks import DatabaseUrl, database_url_from_env, redacted

SECRET = "s3cr3t-Pa55"


def test_heroku_url() -> None:
    url = DatabaseUrl.parse(f"postgres://app:{SECRET}@ec2-1-2-3-4.compute.amazonaws.com:5432/d1")
    assert url.connect_kwargs() == {
        "host": "ec2-1-2-3-4.compute.amazonaws.com",
        "port": "5432",
        "dbname": "d1",
        "user": "app",
        "password": SECRET,
        "sslmode": "require",
    }
    assert url.redacted() == "app@ec2-1-2-3-4.compute.amazonaws.com:5432/d1"
    assert str(url) == url.redacted()
    assert SECRET not in repr(url)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_both_schemes(scheme: str) -> None:
    assert DatabaseUrl.parse(f"{scheme}://u:p@db.example.com/d").host == "db.example.com"


def test_default_port() -> None:
    assert DatabaseUrl.parse("postgres://u:p@db.example.com/d").port == 5432
    assert DatabaseUrl.parse("postgres://u:p@db.example.com:6543/d").port == 6543


@pytest.mark.parametrize(
    ("host", "sslmode"),
    [
        ("localhost", "prefer"),
        ("LOCALHOST", "prefer"),
        ("127.0.0.1", "prefer"),
        ("127.0.0.2", "prefer"),
        ("[::1]", "prefer"),
        ("db.example.com", "require"),
        ("10.0.0.5", "require"),
        ("[2001:db8::1]", "require"),
        ("", "prefer"),  # libpq's default: the local Unix socket
        ("%2Fvar%2Frun%2Fpostgresql", "prefer"),  # a socket folder
        ("localhost,127.0.0.1", "prefer"),
        ("localhost,db.example.com", "require"),  # one remote host is enough
    ],
)
def test_sslmode_defaults_by_host(host: str, sslmode: str) -> None:
    assert DatabaseUrl.parse(f"postgres://u:p@{host}:5432/d").sslmode == sslmode


def test_ipv6_host() -> None:
    url = DatabaseUrl.parse("postgres://u:p@[::1]:5433/d")
    assert (url.host, url.port) == ("::1", 5433)
    assert url.redacted() == "u@[::1]:5433/d"


@pytest.mark.parametrize("mode", ["disable", "require", "verify-full"])
def test_sslmode_from_the_query(mode: str) -> None:
    url = DatabaseUrl.parse(f"postgres://u:p@localhost/d?sslmode={mode}")
    assert url.sslmode == mode
    assert url.connect_kwargs()["sslmode"] == mode


def test_unknown_sslmode() -> None:
    with pytest.raises(ConfigError, match="unknown sslmode 'sometimes'"):
        DatabaseUrl.parse("postgres://u:p@localhost/d?sslmode=sometimes")


def test_other_query_parameters_pass_through_and_override_defaults() -> None:
    url = DatabaseUrl.parse(
        "postgres://u:p@db.example.com/d?application_name=agg&connect_timeout=10"
        "&sslrootcert=%2Fetc%2Fca.pem"
    )
    kwargs = url.connect_kwargs(connect_timeout=5, keepalives=1)
    assert kwargs["application_name"] == "agg"
    assert kwargs["connect_timeout"] == "10"
    assert kwargs["keepalives"] == 1
    assert kwargs["sslrootcert"] == "/etc/ca.pem"


def test_unknown_query_parameter() -> None:
    with pytest.raises(ConfigError, match='invalid URI query parameter: "colour"'):
        DatabaseUrl.parse("postgres://u:p@localhost/d?colour=blue")


def test_percent_encoded_parts() -> None:
    url = DatabaseUrl.parse("postgres://us%40er:p%40ss%2Fw%3Ard%23%3F@db.example.com/my%20db")
    assert url.user == "us@er"
    assert url.password == "p@ss/w:rd#?"
    assert url.dbname == "my db"
    assert url.redacted() == "us@er@db.example.com:5432/my db"


@pytest.mark.parametrize("password", ["a:b", "a?b", "a#b"])
def test_characters_the_password_needs_not_encode(password: str) -> None:
    assert DatabaseUrl.parse(f"postgres://u:{password}@localhost/d").password == password


def test_optional_parts() -> None:
    url = DatabaseUrl.parse("postgresql://db.example.com")
    assert url.connect_kwargs() == {"host": "db.example.com", "sslmode": "require"}
    assert url.redacted() == "db.example.com:5432"
    assert DatabaseUrl.parse("postgres://u@localhost/d").password is None


def test_password_in_the_query() -> None:
    url = DatabaseUrl.parse(f"postgres://u@localhost/d?password={SECRET}")
    assert url.password == SECRET
    assert SECRET not in url.redacted()


def test_scrub_masks_the_password_and_other_secrets() -> None:
    url = DatabaseUrl.parse(f"postgres://u:{SECRET}@localhost/d?sslpassword=key-{SECRET}")
    assert url.scrub(f"oops {SECRET} and key-{SECRET} leaked") == "oops *** and *** leaked"
    assert SECRET not in repr(url) and SECRET not in str(url)


def test_several_hosts_and_key_value_strings() -> None:
    url = DatabaseUrl.parse("postgres://u:p@db1.example.com:5432,db2.example.com:5433/d")
    assert url.redacted() == "u@db1.example.com,db2.example.com:5432,5433/d"
    assert url.port == 5432
    url = DatabaseUrl.parse(f"host=localhost port=5433 dbname=d user=u password={SECRET}")
    assert (url.redacted(), url.sslmode, url.password) == ("u@localhost:5433/d", "prefer", SECRET)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"mysql://u:{SECRET}@host/d", "unknown scheme 'mysql'"),
        (f"POSTGRES://u:{SECRET}@host/d", "unknown scheme 'POSTGRES'"),
        (f"u:{SECRET}@host:5432/d", "is not a URL"),
        ("", "is empty"),
        (f"postgres://u:{SECRET}@host:port/d", "from 1 to 65535"),
        (f"postgres://u:{SECRET}@host:99999/d", "from 1 to 65535"),
        (f"postgres://u:{SECRET}@host:0/d", "from 1 to 65535"),
        # An unencoded '/' in the password: libpq would show the rest as port and dbname.
        ("postgres://u:sec/ret@host/d", "percent-encode"),
        ("postgres://u:1234/ret@host/d", "percent-encode"),
        # libpq's own messages, with what they quote of the URL masked.
        (f"postgres://u:{SECRET}@[::1/d", "IPv6"),
        ("postgres://u:sec%zzret@host/d", "invalid percent-encoded token"),
    ],
)
def test_bad_urls_are_one_line_config_errors_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        DatabaseUrl.parse(url, "DATABASE_URL")
    text = str(raised.value)
    assert message in text
    assert text.startswith("DATABASE_URL")
    assert "\n" not in text
    for secret in (SECRET, "sec", "ret"):
        assert secret not in text
    # No chained exception that might quote the URL in a traceback.
    error = raised.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_redacted() -> None:
    assert redacted(f"postgres://app:{SECRET}@db:5432/d1") == "app@db:5432/d1"
    assert redacted(f"postgres://app:{SECRET}@db/d1?sslmode=require") == "app@db:5432/d1"
    assert redacted("postgres://db.example.com/d") == "db.example.com:5432/d"
    # Malformed: nothing that might be part of the password is shown.
    assert redacted("postgres://u:sec/ret@host/d") == "<malformed database URL>"
    assert redacted("postgres://u:secret@host:12ab/d") == "<malformed database URL>"
    assert redacted("postgres://u:secret@/d") == "u@<local socket>:5432/d"
    assert redacted("") == "<malformed database URL>"


# -- which database from the environment ----------------------------------------------------

DEV_URL = "postgres://topicflow:topicflow@127.0.0.1:15432/topicflow"


def test_database_url_first() -> None:
    env = {"DATABASE_URL": DEV_URL, "HEROKU_POSTGRESQL_RED_URL": "postgres://x:y@other/d"}
    assert database_url_from_env(env) == ("DATABASE_URL", DEV_URL)


@pytest.mark.parametrize("name", ["HEROKU_POSTGRESQL_RED_URL", "HEROKU_POSTGRESQL_URL"])
def test_a_single_heroku_postgresql_url(name: str) -> None:
    env = {name: DEV_URL, "DATABASE_URL": "  "}
    assert database_url_from_env(env) == (name, DEV_URL)


def test_several_heroku_postgresql_urls_need_database_url() -> None:
    env = {"HEROKU_POSTGRESQL_RED_URL": DEV_URL, "HEROKU_POSTGRESQL_BLUE_URL": DEV_URL}
    with pytest.raises(ConfigError, match="HEROKU_POSTGRESQL_BLUE_URL, HEROKU_POSTGRESQL_RED_URL"):
        database_url_from_env(env)


def test_no_database() -> None:
    assert database_url_from_env({"DATABASE_URL": "", "OTHER_URL": DEV_URL}) is None
