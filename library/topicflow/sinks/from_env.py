"""Which database the windowed counts go to, from the environment (Heroku's variables).

    counts.to_stream().process(windowed_count_sink_from_env())

PostgreSQL when `DATABASE_URL` (or a single `HEROKU_POSTGRESQL_*_URL`) is set,
else a SQLite file (`$TOPICFLOW_SQLITE_PATH`, default `windowed_counts.sqlite3`):
the demo needs no setup.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

from topicflow.errors import ConfigError
from topicflow.sinks.sqlite import SqliteSink
from topicflow.sinks.windowed_counts import DEFAULT_TABLE, WindowedCountSink

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "SQLITE_PATH_VARIABLE",
    "database_url_from_env",
    "windowed_count_sink_from_env",
]

log = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = "windowed_counts.sqlite3"
SQLITE_PATH_VARIABLE = "TOPICFLOW_SQLITE_PATH"
_HEROKU_URL = re.compile(r"HEROKU_POSTGRESQL(?:_[A-Z0-9_]+)?_URL")


def database_url_from_env(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, URL) of the PostgreSQL database to use: `DATABASE_URL` if set, else the
    single `HEROKU_POSTGRESQL_*_URL`; None if neither is set."""
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


def windowed_count_sink_from_env(
    environ: Mapping[str, str] | None = None, table: str = DEFAULT_TABLE
) -> WindowedCountSink:
    """PostgreSQL if `DATABASE_URL` (or a single `HEROKU_POSTGRESQL_*_URL`) is set,
    else SQLite in `$TOPICFLOW_SQLITE_PATH` (default `windowed_counts.sqlite3` in the
    current directory): no setup needed."""
    environ = os.environ if environ is None else environ
    found = database_url_from_env(environ)
    sink: WindowedCountSink
    if found is not None:
        variable, url = found
        from topicflow.sinks.postgres import PostgresSink

        sink = PostgresSink(url, table, variable=variable)
        log.info("windowed counts go to %s, table %s (from %s)", sink.where, table, variable)
    else:
        path = environ.get(SQLITE_PATH_VARIABLE, "").strip() or DEFAULT_SQLITE_PATH
        sink = SqliteSink(path, table)
        log.info(
            "windowed counts go to %s, table %s (set DATABASE_URL to use PostgreSQL)",
            sink.where,
            table,
        )
    return sink
