"""How a stream-stream join enters the topology: Kafka Streams' KStreamImplJoin.

Two WINDOWED nodes (one per side, each with its side's join window store), the
two join nodes (JOINTHIS/JOINOTHER, or OUTERTHIS/OUTEROTHER for an outer side)
and a MERGE node; a left or outer join adds the store both join nodes share.
Names, the order of the indexes they spend, store names and the repartition
topics of a re-keyed side are Kafka Streams' (checked against its describe()).
The nodes themselves are in `topicflow.dsl.stream_stream_join`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from topicflow.dsl.join_windows import JoinWindows
from topicflow.dsl.operations import pass_through_node
from topicflow.dsl.stream_joined import StreamJoined
from topicflow.dsl.stream_stream_join import (
    SideJoiner,
    TimeTrackers,
    join_side_node,
    join_window_node,
)
from topicflow.state.join_stores import JoinSideSerdes
from topicflow.state.stores import StoreSpec

if TYPE_CHECKING:
    from topicflow.dsl.internal import InternalStreamsBuilder
    from topicflow.dsl.kstream import KStream

__all__ = ["join_streams"]

# Kafka Streams keeps a windowed changelog one day past the store's retention.
_CHANGELOG_EXTRA_RETENTION_MS = 24 * 3600 * 1000


def _side_joiner(joiner: Callable[..., Any], with_key: bool, is_left: bool) -> SideJoiner:
    """The user's joiner as (key, this side's value, other side's value) -> result."""
    if is_left:
        if with_key:
            return joiner
        return lambda key, this, other: joiner(this, other)
    if with_key:
        return lambda key, this, other: joiner(key, other, this)
    return lambda key, this, other: joiner(other, this)


def join_streams(
    graph: InternalStreamsBuilder,
    this: tuple[str, bool],
    other: tuple[str, bool],
    joiner: Callable[..., Any],
    windows: JoinWindows,
    stream_joined: StreamJoined | None,
    with_key: bool,
    left_outer: bool,
    right_outer: bool,
) -> KStream[Any, Any]:
    """Add a join of two streams, each given as (node, whether its key may have
    changed), to their builder: inner; left with `left_outer`; outer with both.
    Named as Kafka Streams names it; returns the stream of its results."""
    joined = stream_joined or StreamJoined()
    name = joined.name
    # Null keys cannot be partitioned; a left or outer join still joins them.
    keep_null_keys = left_outer or right_outer
    (this_parent, this_rekeyed), (other_parent, other_rekeyed) = this, other
    if this_rekeyed:
        this_parent = _repartition(
            graph,
            this_parent,
            f"{name}-left" if name else this_parent,
            joined.key_serde,
            joined.value_serde,
            keep_null_keys,
        )
    if other_rekeyed:
        other_parent = _repartition(
            graph,
            other_parent,
            f"{name}-right" if name else other_parent,
            joined.key_serde,
            joined.other_value_serde,
            keep_null_keys,
        )
    # Records of one key must meet in one task: both sides' topics co-partitioned.
    graph.copartition(this_parent, other_parent)

    this_suffix = "-outer-this-join" if right_outer else "-this-join"
    other_suffix = "-outer-other-join" if left_outer else "-other-join"
    this_windowed = _named(graph, name, "-this-windowed", "WINDOWED")
    other_windowed = _named(graph, name, "-other-windowed", "WINDOWED")
    this_generated = graph.node_name("OUTERTHIS" if right_outer else "JOINTHIS", None)
    other_generated = graph.node_name("OUTEROTHER" if left_outer else "JOINOTHER", None)
    this_join = name + this_suffix if name else this_generated
    other_join = name + other_suffix if name else other_generated
    merge = _named(graph, name, "-merge", "MERGE")

    base = joined.store_name
    this_store = (base + this_suffix if base else this_generated) + "-store"
    other_store = (base + other_suffix if base else other_generated) + "-store"
    shared_store = None
    if left_outer:
        if base:
            shared_store = base + ("-outer-shared-join" if right_outer else "-left-shared-join")
        else:
            index = this_generated.rsplit("-", 1)[1]
            shared_store = f"KSTREAM-OUTERSHARED-{index}"
        shared_store += "-store"

    trackers = TimeTrackers()
    windowed = {
        this_windowed: (join_window_node(this_store), this_parent),
        other_windowed: (join_window_node(other_store), other_parent),
    }
    joins = {
        this_join: (
            join_side_node(
                other_store,
                shared_store,
                _side_joiner(joiner, with_key, is_left=True),
                windows,
                is_left=True,
                outer=left_outer,
                trackers=trackers,
            ),
            this_windowed,
        ),
        other_join: (
            join_side_node(
                this_store,
                shared_store,
                _side_joiner(joiner, with_key, is_left=False),
                windows,
                is_left=False,
                outer=right_outer,
                trackers=trackers,
            ),
            other_windowed,
        ),
    }
    # Kafka Streams' describe() lists nodes of equal sub-tree size by name: both
    # sides' nodes are added so, which prints them in that order. Not in a self-join:
    # there the order is the source's order of children, this side first.
    self_join = this_parent == other_parent
    for nodes in (windowed, joins):
        for node in nodes if self_join else sorted(nodes):
            graph.add_processor(node, *nodes[node])
    graph.add_processor(merge, pass_through_node(), this_join, other_join)

    topology = graph.topology
    topology.add_state_store(_window_store(this_store, joined, joined.value_serde, windows))
    topology.add_state_store(_window_store(other_store, joined, joined.other_value_serde, windows))
    if shared_store is not None:
        spec = StoreSpec(
            shared_store,
            "key_value",
            joined.key_serde,
            JoinSideSerdes(joined.value_serde, joined.other_value_serde),
            persistent=joined.persistent,
            logging=joined.logging,
            caching=False,
            retain_duplicates=True,
            replay_safe=False,
            changelog_config={"cleanup.policy": "compact"},
        )
        topology.add_state_store(spec)
    shared = [shared_store] if shared_store is not None else []
    for node, stores in (
        (this_windowed, [this_store]),
        (other_windowed, [other_store]),
        (this_join, [other_store, *shared]),
        (other_join, [this_store, *shared]),
    ):
        topology.connect_processor_and_state_stores(node, stores=_java_set_order(stores))
    return graph.new_stream(merge, key_changed=False)


def _java_set_order(names: list[str]) -> list[str]:
    """`names` in the order Kafka Streams' describe() lists a node's stores: a Java
    HashSet's (of 16 buckets, by String.hashCode), for the node's two stores."""

    def bucket(name: str) -> int:
        h = 0
        for unit in name.encode("utf-16-be").hex(" ", 2).split():
            h = (31 * h + int(unit, 16)) & 0xFFFFFFFF
        return (h ^ (h >> 16)) & 15

    return sorted(names, key=bucket)


def _named(graph: InternalStreamsBuilder, name: str | None, suffix: str, kind: str) -> str:
    """`name` + `suffix`, or a generated name; Kafka Streams spends an index either way."""
    generated = graph.node_name(kind, None)
    return name + suffix if name else generated


def _repartition(
    graph: InternalStreamsBuilder,
    parent: str,
    base: str,
    key_serde: Any,
    value_serde: Any,
    keep_null_keys: bool,
) -> str:
    """A re-keyed side through `{base}-repartition`, its nodes named as Kafka Streams'."""
    return graph.through_repartition_topic(
        parent,
        base,
        key_serde,
        value_serde,
        None,
        drop_null_keys=True,
        keep_null_keys=keep_null_keys,
    )


def _window_store(
    name: str, joined: StreamJoined, value_serde: Any, windows: JoinWindows
) -> StoreSpec:
    retention = windows.retention_ms()
    return StoreSpec(
        name,
        "window",
        joined.key_serde,
        value_serde,
        persistent=joined.persistent,
        logging=joined.logging,
        caching=False,
        retention_ms=retention,
        window_size_ms=windows.size_ms(),
        retain_duplicates=True,
        replay_safe=False,
        # Duplicates are kept under distinct keys: the changelog is not compacted.
        changelog_config={
            "cleanup.policy": "delete",
            "retention.ms": str(retention + _CHANGELOG_EXTRA_RETENTION_MS),
        },
    )
