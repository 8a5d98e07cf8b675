"""Reading the few librdkafka properties the embedded clients understand."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from topicflow.errors import ConfigError

__all__ = ["flag", "number"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def flag(config: Mapping[str, Any], name: str, default: bool) -> bool:
    """A boolean property, given as a bool or as librdkafka's "true"/"false" string."""
    value = config.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean: use true or false")


def number(config: Mapping[str, Any], name: str, default: float) -> float:
    """A numeric property, given as a number or a numeric string."""
    value = config.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number") from None
