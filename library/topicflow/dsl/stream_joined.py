"""StreamJoined: the serdes, names and stores of a stream-stream join.

    StreamJoined.with_(Serdes.String(), Serdes.String(), Serdes.Long())
        .with_name("orders-payments")        # names the join's nodes (and repartition topics)
        .with_store_name("orders-payments")  # names its stores (and their changelogs)

The serdes are the key's, this stream's value's and the other stream's value's:
the join stores and the repartition topics of a re-keyed side use them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from topicflow.serdes import Serde


@dataclass(frozen=True, slots=True)
class StreamJoined:
    """Kafka Streams' StreamJoined."""

    key_serde: Serde[Any] | None = None
    value_serde: Serde[Any] | None = None
    other_value_serde: Serde[Any] | None = None
    name: str | None = None
    store_name: str | None = None
    logging: bool = True
    persistent: bool = False

    @staticmethod
    def with_(
        key_serde: Serde[Any] | None,
        value_serde: Serde[Any] | None,
        other_value_serde: Serde[Any] | None,
    ) -> StreamJoined:
        return StreamJoined(key_serde, value_serde, other_value_serde)

    @staticmethod
    def as_(store_name: str) -> StreamJoined:
        return StreamJoined(store_name=store_name)

    def with_name(self, name: str) -> StreamJoined:
        return dataclasses.replace(self, name=name)

    def with_store_name(self, store_name: str) -> StreamJoined:
        return dataclasses.replace(self, store_name=store_name)

    def with_key_serde(self, serde: Serde[Any]) -> StreamJoined:
        return dataclasses.replace(self, key_serde=serde)

    def with_value_serde(self, serde: Serde[Any]) -> StreamJoined:
        return dataclasses.replace(self, value_serde=serde)

    def with_other_value_serde(self, serde: Serde[Any]) -> StreamJoined:
        return dataclasses.replace(self, other_value_serde=serde)

    def with_logging_disabled(self) -> StreamJoined:
        return dataclasses.replace(self, logging=False)

    def with_logging_enabled(self) -> StreamJoined:
        return dataclasses.replace(self, logging=True)

    def persistent_stores(self) -> StreamJoined:
        """Keep the join's stores in RocksDB under `state_dir` instead of memory."""
        return dataclasses.replace(self, persistent=True)

    def in_memory_stores(self) -> StreamJoined:
        return dataclasses.replace(self, persistent=False)
