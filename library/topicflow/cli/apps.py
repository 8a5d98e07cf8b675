"""Naming an application on the command line, as uvicorn and gunicorn do.

`MODULE:ATTR` imports MODULE and takes ATTR (dots reach into it). ATTR is a
`Topology`, a `KafkaStreams` (which brings its config: the application id
and the dead-letter topic), or a function of no arguments returning either.

A name without a colon is looked up among the `topicflow.apps` entry points
that installed distributions declare, e.g. in an application's pyproject.toml:

    [project.entry-points."topicflow.apps"]
    aggregator = "services.aggregator:streams"
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

from topicflow.config import StreamsConfig
from topicflow.errors import ConfigError
from topicflow.runtime.kafka_streams import KafkaStreams
from topicflow.topology.topology import Topology

APPS_GROUP = "topicflow.apps"


@dataclass(frozen=True)
class App:
    """What the command line found: a topology, and its config when it came with one."""

    target: str
    topology: Topology
    config: StreamsConfig | None


def app_names() -> list[str]:
    return sorted({point.name for point in entry_points(group=APPS_GROUP)})


def load_app(target: str) -> App:
    """The application TARGET names; a ConfigError saying what is wrong otherwise."""
    if ":" in target:
        module_name, _, attribute = target.partition(":")
    else:
        points = [p for p in entry_points(group=APPS_GROUP) if p.name == target]
        if not points:
            known = ", ".join(app_names()) or "none installed"
            raise ConfigError(
                f"no application named {target!r} (named ones: {known}); "
                "give MODULE:ATTR, e.g. myapp.topology:build_topology"
            )
        module_name, _, attribute = points[0].value.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{target!r} is not MODULE:ATTR, e.g. myapp.topology:build_topology")
    found = _attribute(_module(module_name, target), attribute, target)
    if callable(found) and not isinstance(found, (Topology, KafkaStreams)):
        found = found()
    if isinstance(found, KafkaStreams):
        return App(target, found.topology, found.config)
    if isinstance(found, Topology):
        return App(target, found, None)
    raise ConfigError(
        f"{target} is a {type(found).__name__}, not a Topology, a KafkaStreams "
        "or a function returning one"
    )


def _module(name: str, target: str) -> object:
    # `topicflow describe app:topology` run from the project's folder finds
    # `app.py` there, as `python -m` would.
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is not None and name.startswith(error.name):
            raise ConfigError(f"cannot import {name!r} (from {target})") from None
        raise


def _attribute(module: object, path: str, target: str) -> object:
    found = module
    for part in path.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"{target}: no attribute {part!r}") from None
    return found
