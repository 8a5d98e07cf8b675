"""The stateless DSL operations as node factories.

Each factory returns the per-task function of its node: a closure over the
user's function and the node's downstream, with no per-record allocation of
its own. This is the whole per-record cost of a stateless operation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from topicflow.topology.nodes import Forward, NodeFactory, TaskContext, forward_to


def filter_node(predicate: Callable[[Any, Any], bool], keep_if: bool) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if keep_if:

            def keep(key: Any, value: Any) -> None:
                if predicate(key, value):
                    forward(key, value)

            return keep

        def drop_matching(key: Any, value: Any) -> None:
            if not predicate(key, value):
                forward(key, value)

        return drop_matching

    return factory


def map_node(mapper: Callable[[Any, Any], tuple[Any, Any]]) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def map_(key: Any, value: Any) -> None:
            new_key, new_value = mapper(key, value)
            forward(new_key, new_value)

        return map_

    return factory


def drop_null_keys_node() -> NodeFactory:
    """Forward keyed records only: what a grouping's repartition topic can place."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def keep_keyed(key: Any, value: Any) -> None:
            if key is not None:
                forward(key, value)

        return keep_keyed

    return factory


def map_values_node(mapper: Callable[..., Any], with_key: bool) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if with_key:

            def map_values_with_key(key: Any, value: Any) -> None:
                forward(key, mapper(key, value))

            return map_values_with_key

        def map_values(key: Any, value: Any) -> None:
            forward(key, mapper(value))

        return map_values

    return factory


def flat_map_node(mapper: Callable[[Any, Any], Iterable[tuple[Any, Any]]]) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def flat_map(key: Any, value: Any) -> None:
            for new_key, new_value in mapper(key, value):
                forward(new_key, new_value)

        return flat_map

    return factory


def flat_map_values_node(mapper: Callable[..., Iterable[Any]], with_key: bool) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)
        if with_key:

            def flat_map_values_with_key(key: Any, value: Any) -> None:
                for new_value in mapper(key, value):
                    forward(key, new_value)

            return flat_map_values_with_key

        def flat_map_values(key: Any, value: Any) -> None:
            for new_value in mapper(value):
                forward(key, new_value)

        return flat_map_values

    return factory


def select_key_node(selector: Callable[[Any, Any], Any]) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def select_key(key: Any, value: Any) -> None:
            forward(selector(key, value), value)

        return select_key

    return factory


def peek_node(action: Callable[[Any, Any], None]) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        forward = forward_to(children)

        def peek(key: Any, value: Any) -> None:
            action(key, value)
            forward(key, value)

        return peek

    return factory


def foreach_node(action: Callable[[Any, Any], None]) -> NodeFactory:
    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        return action

    return factory


def pass_through_node() -> NodeFactory:
    """Merge nodes and branch children: forward as received."""

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        return forward_to(children)

    return factory


def branch_node(predicates: list[Callable[[Any, Any], bool]], has_default: bool) -> NodeFactory:
    """Send each record to the first branch whose predicate holds, else to the default.

    The children are the branch nodes in order, the default branch last.
    """

    def factory(task: TaskContext, children: dict[str, Forward]) -> Forward:
        targets = list(children.values())
        routes = list(zip(predicates, targets, strict=False))
        default = targets[len(predicates)] if has_default else None

        def branch(key: Any, value: Any) -> None:
            for predicate, target in routes:
                if predicate(key, value):
                    target(key, value)
                    return
            if default is not None:
                default(key, value)

        return branch

    return factory
