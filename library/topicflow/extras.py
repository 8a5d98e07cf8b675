"""The optional dependencies (extras) and the error a missing one gives."""

from __future__ import annotations

from topicflow.errors import ConfigError


def missing_extra(extra: str, feature: str, error: ModuleNotFoundError) -> ConfigError:
    """Raise it `from error` where an extra's import failed: one line saying what to install."""
    return ConfigError(
        f"{feature} needs {error.name!r}, which topicflow installs with its {extra!r} extra: "
        f"pip install 'topicflow[{extra}]'"
    )
