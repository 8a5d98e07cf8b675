"""Which database the example's windowed counts go to, from the environment (Heroku's variables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.windowed_counts import postgres_sink, windowed_count_sink_from_env
from topicflow.errors import ConfigError
from topicflow.sinks import PostgresSink, SqliteSink

SECRET = "s3cr3t-Pa55"
DEV_URL = "postgres://topicflow:topicflow@127.0.0.1:15432/topicflow"


def test_database_url_first() -> None:
    env = {"DATABASE_URL": DEV_URL, "HEROKU_POSTGRESQL_RED_URL": "postgres://x:y@other/d"}
    sink = windowed_count_sink_from_env(env)
    assert isinstance(sink, PostgresSink)
    assert sink.where == "PostgreSQL at topicflow@127.0.0.1:15432/topicflow"
    assert sink.table.name == "windowed_counts"


@pytest.mark.parametrize("name", ["HEROKU_POSTGRESQL_RED_URL", "HEROKU_POSTGRESQL_URL"])
def test_a_single_heroku_postgresql_url(name: str) -> None:
    assert isinstance(
        windowed_count_sink_from_env({name: DEV_URL, "DATABASE_URL": "  "}), PostgresSink
    )


def test_several_heroku_postgresql_urls_need_database_url() -> None:
    env = {"HEROKU_POSTGRESQL_RED_URL": DEV_URL, "HEROKU_POSTGRESQL_BLUE_URL": DEV_URL}
    with pytest.raises(ConfigError, match="HEROKU_POSTGRESQL_BLUE_URL, HEROKU_POSTGRESQL_RED_URL"):
        windowed_count_sink_from_env(env)


def test_bad_url_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: unknown scheme") as raised:
        windowed_count_sink_from_env({"DATABASE_URL": f"mysql://u:{SECRET}@h/d"})
    assert SECRET not in str(raised.value)


def test_sqlite_in_the_current_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sink = windowed_count_sink_from_env({})
    assert isinstance(sink, SqliteSink)
    assert sink.path == tmp_path / "windowed_counts.sqlite3"
    assert sink.table.name == "windowed_counts"


def test_sqlite_path_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.db"
    sink = windowed_count_sink_from_env({"TOPICFLOW_SQLITE_PATH": str(path)}, table="t")
    assert isinstance(sink, SqliteSink)
    assert (sink.path, sink.table.name) == (path, "t")


def test_postgres_sink_validates_at_construction() -> None:
    with pytest.raises(ConfigError, match="connect_timeout"):
        postgres_sink("postgres://u:p@localhost/d?connect_timeout=soon")
    with pytest.raises(ConfigError, match="table name"):
        postgres_sink("postgres://u:p@localhost/d", table="Robert'); DROP TABLE students;--")
