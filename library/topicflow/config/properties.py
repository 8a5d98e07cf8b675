"""Settings given as text: Kafka Streams' property names and `TOPICFLOW_<NAME>` variables.

`StreamsConfig.from_properties` maps `num.stream.threads` (and the older Java
names) to fields; `StreamsConfig.from_env` reads `TOPICFLOW_<NAME>` overrides,
so that on Heroku a config var changes a setting without a deploy. Both parse
the numeric ones here, with errors that name the setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from topicflow.errors import ConfigError

__all__ = ["BOOLEANS", "ENV_INT_SETTINGS", "JAVA_ALIASES", "parse_int", "settings_from_env"]

# The values a boolean `TOPICFLOW_<NAME>` variable may take.
BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}

# Settings that `TOPICFLOW_<NAME>` environment variables may set.
ENV_INT_SETTINGS = (
    "num_stream_threads",
    "num_standby_replicas",
    "statestore_cache_max_bytes",
    "commit_interval_ms",
    "max_poll_records",
    "poll_ms",
    "startup_timeout_ms",
    "session_timeout_ms",
    "task_timeout_ms",
    "max_task_idle_ms",
    "buffered_records_per_partition",
)
ENV_STR_SETTINGS = (
    "state_dir",
    "partition_assignment_strategy",
    "group_instance_id",
    "auto_offset_reset",
    "processing_guarantee",
    "deserialization_exception_handler",
    "processing_exception_handler",
    "production_exception_handler",
    "errors_dead_letter_queue_topic_name",
    "client_id",
)


def settings_from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name in ENV_INT_SETTINGS:
        raw = environ.get(f"TOPICFLOW_{name.upper()}")
        if raw:
            settings[name] = parse_int(f"TOPICFLOW_{name.upper()}", raw)
    for name in ENV_STR_SETTINGS:
        raw = environ.get(f"TOPICFLOW_{name.upper()}")
        if raw:
            settings[name] = raw
    return settings


JAVA_ALIASES = {
    "default_key_serde_class": "default_key_serde",
    "default_value_serde_class": "default_value_serde",
    "max_poll_records": "max_poll_records",
    # Kafka Streams' names before 4.0.
    "default_deserialization_exception_handler": "deserialization_exception_handler",
    "default_production_exception_handler": "production_exception_handler",
}


def parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
