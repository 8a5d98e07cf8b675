"""Plugins for the whole suite: `pytest_plugins` is honoured only in the top-level conftest."""

pytest_plugins = ["tests.integration.heroku_conftest"]
