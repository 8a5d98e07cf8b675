"""Reading the few librdkafka properties the embedded clients understand, and topic configs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from topicflow.errors import ConfigError

__all__ = ["LogConfig", "flag", "number"]

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


# -- topic configs: cleanup policy and retention --------------------------------------------


@dataclass(frozen=True, slots=True)
class LogConfig:
    """How a topic's partitions are cleaned: Kafka's cleanup.policy, by record counts.

    `retention_records` and `retention_ms` (None: unlimited) apply with the
    delete policy only, as Kafka's retention.bytes and retention.ms do.
    """

    delete: bool = True
    compact: bool = False
    retention_records: int | None = None
    retention_ms: int | None = None
    # Records per segment: retention drops and compaction runs a segment at a time.
    segment_records: int = 10_000
    # Compact when at least this many records (and as many as the last compaction
    # kept: Kafka's default min.cleanable.dirty.ratio of 0.5) arrived since.
    min_compaction_records: int = 10_000

    def __post_init__(self) -> None:
        if self.segment_records < 1:
            raise ConfigError(f"segment records must be >= 1, not {self.segment_records}")
        if self.min_compaction_records < 1:
            raise ConfigError(
                f"min compaction records must be >= 1, not {self.min_compaction_records}"
            )
        if self.retention_records is not None and self.retention_records < 1:
            raise ConfigError(
                f"retention.records must be >= 1 (or -1: unlimited), not {self.retention_records}"
            )
        if self.retention_ms is not None and self.retention_ms < 0:
            raise ConfigError(
                f"retention.ms must be >= 0 (or -1: unlimited), not {self.retention_ms}"
            )

    def for_topic(self, topic: str, config: Mapping[str, Any] | None) -> LogConfig:
        """This broker-wide default overridden by a topic's configs.

        Understood: cleanup.policy (delete, compact or both), retention.ms and
        retention.records (this broker's own: Kafka retains by bytes and time),
        -1 meaning unlimited. Other topic configs are accepted and ignored.
        """
        config = config or {}
        delete, compact = self.delete, self.compact
        policy = config.get("cleanup.policy")
        if policy is not None:
            parts = {p.strip().lower() for p in str(policy).split(",")}
            if not parts or not parts <= {"delete", "compact"}:
                raise ConfigError(
                    f"topic {topic!r}: cleanup.policy={policy!r}: use delete, compact "
                    "or compact,delete"
                )
            delete, compact = "delete" in parts, "compact" in parts
        retention_records = _limit(topic, config, "retention.records", self.retention_records)
        retention_ms = _limit(topic, config, "retention.ms", self.retention_ms)
        segment = self.segment_records
        if delete and retention_records is not None:
            # Retention drops whole segments: keep within a tenth of the limit.
            segment = max(1, min(segment, retention_records // 10))
        return LogConfig(
            delete,
            compact,
            retention_records,
            retention_ms,
            segment,
            self.min_compaction_records,
        )


def _limit(topic: str, config: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = config.get(name)
    if value is None:
        return default
    try:
        limit = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"topic {topic!r}: {name}={value!r} is not an integer") from None
    if limit == -1:
        return None
    if limit < (1 if name == "retention.records" else 0):
        raise ConfigError(f"topic {topic!r}: {name}={value!r}: use -1 (unlimited) or more")
    return limit
