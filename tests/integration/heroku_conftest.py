"""Fixtures for tests against the Heroku-like dev broker (`topicflow_dev.heroku_broker`).

A pytest plugin: a test module enables it with

    pytest_plugins = ["tests.integration.heroku_conftest"]

(or the root conftest does; `pytest_plugins` in `tests/integration/conftest.py`
is refused by pytest, that conftest not being the top-level one). The fixtures:

- `heroku_kafka` (session): the broker, started unless it runs, left running
  after the session like `dev_env`'s; `stop_heroku_kafka()` stops it.
- `heroku_app`: an app attached to it, as on a multi-tenant plan: its own
  `KAFKA_PREFIX` (`app-<hex>.`), the prefix ACLs granted to its certificate,
  `env` holding exactly Heroku's five variables, and `create_topics(suffixes)`
  creating `<prefix><suffix>` topics as an operator (on Heroku, with
  `heroku kafka:topics:create`; the app itself may not). Its topics and ACLs
  are deleted after the test.

    def test_x(heroku_app: HerokuApp) -> None:
        (topic,) = heroku_app.create_topics(["input"], partitions=3)
        config = StreamsConfig.from_env("my-app", environ=heroku_app.env)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from topicflow_dev.heroku_broker import HerokuKafka, start_heroku_kafka


@dataclass(frozen=True)
class HerokuApp:
    """An app attached to the Heroku-like broker, with its own prefix."""

    kafka: HerokuKafka
    prefix: str
    """`KAFKA_PREFIX`, e.g. `app-1f2e3d4c.`: its topics' and groups' names start with it."""
    env: dict[str, str]
    """Heroku's variables: KAFKA_URL, KAFKA_TRUSTED_CERT, KAFKA_CLIENT_CERT,
    KAFKA_CLIENT_CERT_KEY, KAFKA_PREFIX."""
    created: list[str] = field(default_factory=list, repr=False)

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}{suffix}"

    def create_topics(
        self,
        suffixes: Iterable[str],
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Create `<prefix><suffix>` topics as the operator; return their names."""
        names = [self.topic(suffix) for suffix in suffixes]
        self.kafka.create_topics(names, partitions, config)
        self.created.extend(names)
        return names


@pytest.fixture(scope="session")
def heroku_kafka() -> HerokuKafka:
    """The Heroku-like broker, started if need be (idempotent); it keeps running."""
    return start_heroku_kafka()


@pytest.fixture
def heroku_app(heroku_kafka: HerokuKafka, unique: str) -> Iterator[HerokuApp]:
    """An app with its own prefix and the prefix's ACLs; cleaned up afterwards."""
    prefix = f"app-{unique}."
    heroku_kafka.grant_prefix(prefix)
    app = HerokuApp(heroku_kafka, prefix, heroku_kafka.env(prefix))
    yield app
    heroku_kafka.delete_topics(app.created)
    heroku_kafka.revoke_prefix(prefix)
