"""The library's wheel holds only `topicflow`, and works installed alone, without extras.

Built from library/ with `uv build`, installed into a new virtualenv with
`uv pip install` (no extras: confluent-kafka is its one dependency), then
`library_user.py` runs a stateful topology with that virtualenv's Python, in
the TopologyTestDriver and on the embedded broker. An extra's feature used
without the extra is one line saying what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    # `./run` exports the uv it installed; otherwise uv on PATH, or the repo's private copy.
    found = (
        os.environ.get("TOPICFLOW_UV")
        or shutil.which("uv")
        or str(ROOT / ".dev" / "tools" / "bin" / "uv")
    )
    assert Path(found).is_file(), "no uv: run the tests with ./run test"
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv(), "build", "--wheel", "--out-dir", str(out), str(ROOT / "library")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("topicflow-*.whl")
    return built


@pytest.fixture(scope="module")
def python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv") / "clean"
    environ = {**os.environ, "VIRTUAL_ENV": str(venv), "UV_PYTHON_DOWNLOADS": "never"}
    subprocess.run(
        [uv(), "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
        timeout=120,
        env=environ,
    )
    subprocess.run(
        [uv(), "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
        env=environ,
    )
    return venv / "bin" / "python"


def run(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Not from the repository's folder: nothing of the work tree may be imported.
    return subprocess.run(
        [str(python), *args], check=False, capture_output=True, text=True, timeout=120, cwd="/"
    )


def test_the_wheel_holds_only_the_library(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"topicflow", "topicflow-0.1.0.dist-info"}
    assert "topicflow/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read("topicflow-0.1.0.dist-info/METADATA").decode()
    requires = sorted(line for line in metadata.splitlines() if line.startswith("Requires-Dist"))
    assert requires == [
        "Requires-Dist: confluent-kafka>=2.6",
        "Requires-Dist: psycopg[binary]>=3.2; extra == 'postgres'",
        "Requires-Dist: rocksdict>=0.3.25; extra == 'rocksdb'",
    ]


def test_installed_alone_it_runs_a_topology_in_the_driver_and_on_the_embedded_broker(
    python: Path,
) -> None:
    done = run(python, str(Path(__file__).with_name("library_user.py")))
    assert done.returncode == 0, done.stdout + done.stderr
    expected = "[('cat', 1), ('end', 1), ('mat', 1), ('on', 1), ('sat', 1), ('the', 3)]"
    assert done.stdout.splitlines() == [f"driver={expected}", f"embedded={expected}"]
    # ...with the library the virtualenv installed, not the work tree's.
    where = run(python, "-c", "import topicflow, confluent_kafka; print(topicflow.__file__)")
    assert where.stdout.startswith(str(python.parents[1] / "lib")), where.stdout
    others = run(python, "-c", "import services")
    assert "No module named 'services'" in others.stderr


@pytest.mark.parametrize(
    ("module", "extra"),
    [("topicflow.sinks.postgres", "postgres"), ("topicflow.state.rocksdb", "rocksdb")],
)
def test_a_missing_extra_is_one_line_saying_what_to_install(
    python: Path, module: str, extra: str
) -> None:
    done = run(python, "-c", f"import {module}")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("topicflow.errors.ConfigError: ")
    assert f"pip install 'topicflow[{extra}]'" in last


def test_the_sinks_without_postgres_and_the_cli_without_the_example(python: Path) -> None:
    done = run(python, "-c", "from topicflow.sinks import SqliteSink; print(SqliteSink.__name__)")
    assert done.stdout.strip() == "SqliteSink", done.stderr
    cli = python.parent / "topicflow"
    helped = subprocess.run(
        [str(cli), "--help"], check=True, capture_output=True, text=True, cwd="/"
    )
    assert helped.returncode == 0
    # Only the library's own commands: no `demo` (the example's), no `dev` (the dev tooling's).
    commands = helped.stdout.split("positional arguments:")[1].split("options:")[0]
    listed = [
        line.split()[0]
        for line in commands.splitlines()
        if line[:4] == "    " and line[4:5].islower()
    ]
    assert listed == ["describe", "topics"]
