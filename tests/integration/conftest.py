"""Fixtures for tests against the real services that `topicflow dev up` runs.

Every test in this folder is marked `integration`, so `pytest -m "not
integration"` runs without Kafka or PostgreSQL.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import topicflow_dev
from topicflow_dev import DevEnv

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The hook sees the whole session's items, not just this folder's.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def dev_env() -> DevEnv:
    """The running Kafka broker and PostgreSQL, started if need be (idempotent)."""
    return topicflow_dev.up()


@pytest.fixture
def unique() -> str:
    """A short random hex string to name a test's topics and groups apart."""
    return secrets.token_hex(4)


@pytest.fixture
def database(dev_env: DevEnv) -> Iterator[str]:
    """A fresh database, so no other test's windowed_counts rows are seen."""
    name = f"it_{secrets.token_hex(4)}"
    admin_url = dev_env.database_url.replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    yield dev_env.database_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
