"""The DSL carries key and value types: a typed topology passes `mypy --strict`, and a
mistyped one is refused on exactly the lines that are wrong."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

HERE = Path(__file__).parent.parent / "typing"


def mypy_errors(path: Path) -> list[int]:
    out, _err, _status = api.run(["--strict", "--no-incremental", "--no-error-summary", str(path)])
    pattern = rf"^\S*{re.escape(path.name)}:(\d+): error"
    return sorted({int(m.group(1)) for m in re.finditer(pattern, out, re.M)})


def test_a_typed_topology_passes_mypy_strict() -> None:
    path = HERE / "typed_topology.py"
    out, _err, status = api.run(["--strict", "--no-incremental", str(path)])
    assert status == 0, out


def test_a_mistyped_topology_is_refused_where_it_is_wrong() -> None:
    path = HERE / "mistyped_topology.py"
    marked = [
        number
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if line.endswith("# error")
    ]
    assert len(marked) == 8
    assert mypy_errors(path) == marked
