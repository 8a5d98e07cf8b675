"""Applying changelog records to a store: restore's and the standby tasks' write path."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from topicflow.config import StreamsConfig
from topicflow.serdes import resolve_serde
from topicflow.state.join_stores import SharedJoinStore, shared_store_serdes
from topicflow.state.logged.cached_key_value import CachedKeyValueStore
from topicflow.state.logged.cached_session import CachedSessionStore
from topicflow.state.logged.cached_window import CachedWindowStore
from topicflow.state.logged.changelog import split_window_changelog_key
from topicflow.state.session_store import split_session_changelog_key
from topicflow.state.stores import TIMESTAMP_PREFIX

log = logging.getLogger(__name__)

Store = CachedKeyValueStore | CachedWindowStore | CachedSessionStore


def _plain_bytes(message: Any) -> bytes | None:
    return message.value()  # type: ignore[no-any-return]


def _timestamped_bytes(message: Any) -> bytes | None:
    """A changelog record as a timestamped store keeps it on disk (`TimestampedSerde`)."""
    value = message.value()
    return None if value is None else TIMESTAMP_PREFIX.pack(message.timestamp()[1]) + value


def batch_applier(store: Store, config: StreamsConfig) -> Callable[[list[Any]], None]:
    """Apply a batch of changelog messages to a store.

    A persistent store takes the serialized bytes as they are (one RocksDB
    write batch, no deserializing); an in-memory store gets objects. A
    timestamped store's value takes the changelog record's timestamp, which
    is where Kafka Streams' changelogs keep it (the value bytes are the
    plain value, so changelogs written before stores were timestamped
    restore the same way).
    """
    restore_batch = getattr(store.inner, "restore_batch", None)
    if restore_batch is None:
        apply = _applier(store, config)

        def apply_each(messages: list[Any]) -> None:
            for message in messages:
                apply(message)

        return apply_each
    raw_value = _timestamped_bytes if store.spec.timestamped else _plain_bytes
    if isinstance(store, CachedWindowStore):

        def apply_windows(messages: list[Any]) -> None:
            records = []
            for message in messages:
                key = message.key()
                if key is not None:
                    key_bytes, window_start = split_window_changelog_key(key)
                    records.append((key_bytes, window_start, raw_value(message)))
            restore_batch(records)

        return apply_windows

    def apply_pairs(messages: list[Any]) -> None:
        restore_batch([(m.key(), raw_value(m)) for m in messages])

    return apply_pairs


def _applier(store: Store, config: StreamsConfig) -> Callable[[Any], None]:
    spec = store.spec
    key_serde = spec.key_serde or config.default_key_serde
    value_serde = resolve_serde(spec.value_serde, config.default_value_serde)
    if isinstance(store, SharedJoinStore):
        key_serde, value_serde = shared_store_serdes(spec, key_serde, config.default_value_serde)
    deserialize_key, deserialize_value = key_serde.deserialize, value_serde.deserialize
    if isinstance(store, CachedWindowStore):
        restore_window = store.restore

        def apply_window(message: Any) -> None:
            key, value = message.key(), message.value()
            if key is None:
                return
            key_bytes, window_start = split_window_changelog_key(key)
            restore_window(
                deserialize_key(key_bytes),
                window_start,
                None if value is None else deserialize_value(value),
                message.timestamp()[1],
            )

        return apply_window
    if isinstance(store, CachedSessionStore):
        restore_session = store.restore

        def apply_session(message: Any) -> None:
            key, value = message.key(), message.value()
            if key is None:
                return
            key_bytes, start, end = split_session_changelog_key(key)
            restore_session(
                deserialize_key(key_bytes),
                start,
                end,
                None if value is None else deserialize_value(value),
            )

        return apply_session
    restore = store.restore

    def apply(message: Any) -> None:
        value = message.value()
        restore(
            deserialize_key(message.key()),
            None if value is None else deserialize_value(value),
            message.timestamp()[1],
        )

    return apply


def set_replay_stamps(
    task_id: str, store: Store, by_key: dict[bytes, int], config: StreamsConfig
) -> None:
    """Hand a store the stamps of its replayed keys, keyed as its cache keys them."""
    if not by_key:
        return
    spec = store.spec
    deserialize_key = (spec.key_serde or config.default_key_serde).deserialize
    stamps: dict[Any, int] = {}
    if isinstance(store, SharedJoinStore) or spec.retain_duplicates:
        return  # a join's stores: replays stay at-least-once
    if isinstance(store, CachedWindowStore):
        for changelog_key, stamp in by_key.items():
            key_bytes, window_start = split_window_changelog_key(changelog_key)
            stamps[(deserialize_key(key_bytes), window_start)] = stamp
    elif isinstance(store, CachedKeyValueStore):
        for changelog_key, stamp in by_key.items():
            stamps[deserialize_key(changelog_key)] = stamp
    else:
        return  # session stores: replays stay at-least-once
    store.set_replay_stamps(stamps)
    log.info(
        "task %s: %d keys of store %s were written after the last commit; a replay "
        "will not apply their records again",
        task_id,
        len(stamps),
        spec.name,
    )
