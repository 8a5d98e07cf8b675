"""The library's import graph: no cycles, and no import against the layers.

The graph is read from the source (every `import`, at module level or inside a
function, except under `if TYPE_CHECKING:`), so a lazy import that hides a
cycle from Python at run time still counts. The rules:

- no two modules import each other, directly or around a loop;
- `runtime` does not import the DSL; `state`, `topology` and `brokers` import
  neither `runtime` nor the DSL; `brokers` imports no other layer;
- the library imports neither the example application (`services`) nor the
  dev tooling (`topicflow_dev`): both depend on it, never the other way.

What is still wrong is listed below, and strictly: a listed cycle or import
that disappears fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import topicflow

PACKAGE = Path(topicflow.__file__).parent

# Layer -> layers it must not import.
FORBIDDEN = {
    "runtime": {"dsl"},
    "state": {"runtime", "dsl"},
    "topology": {"runtime", "dsl"},
    "brokers": {"runtime", "dsl", "state", "topology"},
    "dsl": {"runtime"},
}

# None left: the DSL's classes, which return each other (KStream.group_by ->
# KGroupedStream -> KTable -> to_stream -> KStream...), create each other through
# the internal builder they share (topicflow.dsl.internal, as Kafka Streams'
# InternalStreamsBuilder), and import each other only under TYPE_CHECKING.
KNOWN_CYCLES: list[set[str]] = []
# The packages that depend on the library, which it must not import.
DEPENDENTS = ("services", "topicflow_dev")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str) -> set[str]:
    """Every module name `path` imports (and, for `from m import x`, also `m.x`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if "TYPE_CHECKING" in ast.unparse(node.test):
                for statement in node.orelse:
                    self.visit(statement)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported_name in imported(path, name):
            target = imported_name
            while target and target not in modules and not target.startswith(DEPENDENTS):
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in graph.get(node, ()):
            if child not in graph:
                continue
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "topicflow" else parts[0]


def test_no_import_cycles_but_the_known_ones() -> None:
    found = cycles(import_graph())
    assert sorted(map(sorted, found)) == sorted(map(sorted, KNOWN_CYCLES))


def test_no_import_against_the_layers() -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) in FORBIDDEN.get(layer(module), set())
    )
    assert wrong == []


def test_the_library_imports_neither_the_example_nor_the_dev_tooling() -> None:
    importers = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in DEPENDENTS
    )
    assert importers == []


def test_the_check_sees_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from topicflow.dsl import KStream\n"
        "def f():\n"
        "    from topicflow.runtime import task\n"
    )
    found = imported(source, "topicflow.state.mod")
    assert "topicflow.runtime.task" in found
    assert not any(name.startswith("topicflow.dsl") for name in found)
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
