"""The Heroku files: Procfile, app.json, bin/heroku-setup, and what the Python buildpack needs.

Everything is checked offline: bin/heroku-setup runs with --dry-run, or against
a fake `heroku` on PATH that records its arguments.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from services.registry import SERVICES
from topicflow.config import StreamsConfig

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bin" / "heroku-setup"
BASH = shutil.which("bash") or "/bin/bash"
SERVICE_NAMES = ["text-processor", "aggregator", "anomaly-detector"]
WORKERS = ["text_processor_worker", "aggregator_worker", "anomaly_detector_worker"]
GENERATORS = ["text_generator_worker", "log_generator_worker"]
DAY_MS = 24 * 3600 * 1000


def clean_env(**extra: str) -> dict[str, str]:
    """No Kafka, database or topicflow settings from the developer's shell."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


def setup(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=60,
        check=False,
    )


def commands(stdout: str) -> list[list[str]]:
    """The heroku commands of a dry run, each split into its words."""
    return [shlex.split(line) for line in stdout.splitlines() if line.startswith("heroku ")]


def builtin_topics(service: str) -> list[str]:
    result = subprocess.run(
        [BASH, "-c", 'source "$1" && builtin_topics "$2"', "bash", str(SCRIPT), service],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=True,
    )
    return result.stdout.split()


def topicflow_topics(service: str, prefix: str | None = None) -> list[str]:
    env = clean_env() if prefix is None else clean_env(KAFKA_PREFIX=prefix)
    result = subprocess.run(
        [sys.executable, "-m", "topicflow.cli.main", "topics", service, "--list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    return result.stdout.split()


def script_constant(name: str) -> str:
    match = re.search(rf"^readonly {name}=(.*)$", SCRIPT.read_text(), re.MULTILINE)
    assert match, f"bin/heroku-setup defines no {name}"
    return shlex.split(match.group(1))[0]


def all_topics() -> list[str]:
    seen: list[str] = []
    for service in SERVICE_NAMES:
        seen += [t for t in builtin_topics(service) if t not in seen]
    return seen


# -- bin/heroku-setup: shape -----------------------------------------------------------


def test_setup_script_is_executable_bash_that_parses() -> None:
    assert os.access(SCRIPT, os.X_OK)
    lines = SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines
    subprocess.run([BASH, "-n", str(SCRIPT)], check=True, timeout=30)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_setup_script_passes_shellcheck() -> None:
    subprocess.run(["shellcheck", str(SCRIPT)], check=True, timeout=60)


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_builtin_topic_list_matches_topicflow(service: str) -> None:
    """The fallback for laptops without topicflow lists what `topicflow topics` lists."""
    builtin = builtin_topics(service)
    assert builtin == topicflow_topics(service)
    assert [f"p.{t}" for t in builtin] == topicflow_topics(service, prefix="p.")


def test_builtin_and_topicflow_give_the_same_commands() -> None:
    via_topicflow = setup("myapp", "basic-0", "--dry-run")
    builtin = setup("myapp", "basic-0", "--dry-run", HEROKU_SETUP_TOPICFLOW="none")
    broken = setup("myapp", "basic-0", "--dry-run", HEROKU_SETUP_TOPICFLOW="/bin/false")
    assert via_topicflow.returncode == builtin.returncode == broken.returncode == 0
    assert "topics from the built-in list" in builtin.stdout
    assert "topics from the built-in list" in broken.stdout
    assert commands(via_topicflow.stdout) == commands(builtin.stdout) == commands(broken.stdout)


def test_changelogs_are_windowed_as_the_script_assumes() -> None:
    """The script gives every changelog compact+delete with a retention: right for
    window stores only, and long enough for Kafka Streams' retention of each."""
    retention = script_constant("CHANGELOG_RETENTION")
    assert retention.endswith("d")
    retention_ms = int(retention[:-1]) * DAY_MS
    assert retention_ms >= DAY_MS  # the CLI's minimum
    for service in SERVICES.values():
        topology = service.topology(environ={})
        for topic in topology.internal_topics.values():
            assert topic.kind in ("changelog", "repartition")
            name = topic.full_name(service.config(environ={}).application_id)
            assert name.endswith(f"-{topic.kind}")
            if topic.kind == "changelog":
                assert topic.config["cleanup.policy"] == "compact,delete", name
                assert int(topic.config["retention.ms"]) <= retention_ms, name
            else:
                assert "compact" not in topic.config.get("cleanup.policy", "delete"), name


def test_consumer_groups_are_the_application_ids_and_restore_groups() -> None:
    for name, service in SERVICES.items():
        assert service.config(environ={}).application_id == f"{name}-app"
    # The restore and standby consumers' group, which bin/heroku-setup creates.
    from topicflow.runtime.worker_clients import restore_consumer_config

    for name, service in SERVICES.items():
        config = service.config(environ={})
        assert restore_consumer_config(config, "c")["group.id"] == f"{name}-app-restore"


# -- bin/heroku-setup: dry runs ----------------------------------------------------------


def test_dry_run_on_a_basic_plan() -> None:
    result = setup("myapp", "basic-0", "--partitions", "4", "--dry-run")
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert all(c[-2:] == ["--app", "myapp"] for c in cmds), cmds
    verbs = [c[1] for c in cmds]
    assert ["heroku", "addons:create", "heroku-kafka:basic-0", "--app", "myapp"] in cmds
    assert ["heroku", "addons:create", "heroku-postgresql:essential-0", "--app", "myapp"] in cmds
    assert verbs.index("kafka:wait") < verbs.index("kafka:topics:create")
    assert ["heroku", "config:get", "KAFKA_PREFIX", "--app", "myapp"] in cmds

    created = {c[2]: c[3:-2] for c in cmds if c[1] == "kafka:topics:create"}
    assert list(created) == all_topics()
    assert len(created) == 13  # 10 the services read and write, 3 dead-letter topics
    for topic, flags in created.items():
        assert flags[:2] == ["--partitions", "4"], topic
        if topic.endswith("-changelog"):
            assert flags[2:] == ["--compaction", "--retention-time", "2d"], topic
        elif topic == "users":  # the users table keeps each profile for ever
            assert flags[2:] == ["--compaction"], topic
        else:
            assert flags[2:] == [], topic
    assert not any(t.startswith("<") for t in created)  # never the prefix placeholder

    groups = [c[2] for c in cmds if c[1] == "kafka:consumer-groups:create"]
    assert groups == [
        "text-processor-app",
        "aggregator-app",
        "aggregator-app-restore",
        "anomaly-detector-app",
        "anomaly-detector-app-restore",
    ]
    assert verbs.index("kafka:topics:create") < verbs.index("pg:psql") < verbs.index("ps:scale")
    assert cmds[-1] == ["heroku", "ps:scale", *[f"{w}=1" for w in WORKERS], "--app", "myapp"]
    assert "without the prefix" in result.stdout


def test_dry_run_on_a_dedicated_plan() -> None:
    result = setup("myapp", "standard-0", "--dry-run")
    assert result.returncode == 0, result.stderr
    cmds = commands(result.stdout)
    assert ["heroku", "addons:create", "heroku-kafka:standard-0", "--app", "myapp"] in cmds
    assert not [c for c in cmds if c[1].startswith("kafka:consumer-groups")]
    created = [c for c in cmds if c[1] == "kafka:topics:create"]
    assert [c[2] for c in created] == all_topics()
    assert all(c[3:5] == ["--partitions", "8"] for c in created)  # the default
    changelogs = [c for c in created if c[2].endswith("-changelog")]
    assert len(changelogs) == 3
    assert all("--compaction" in c for c in changelogs)
    # The warning comes before the first topic is created.
    lines = result.stdout.splitlines()
    warning = next(i for i, line in enumerate(lines) if "cannot change" in line)
    first_create = next(i for i, line in enumerate(lines) if "kafka:topics:create" in line)
    assert warning < first_create
    assert lines[warning].startswith("#")


def test_the_table_is_the_sinks_own_ddl() -> None:
    from services.windowed_counts import windowed_counts_table
    from topicflow.sinks.postgres import create_sql

    statements = create_sql(windowed_counts_table())
    expected = "; ".join(statement.as_string(None) for statement in statements) + ";"
    cmds = commands(setup("myapp", "basic-0", "--dry-run").stdout)
    psql = next(c for c in cmds if c[1] == "pg:psql")
    assert psql == ["heroku", "pg:psql", "--command", expected, "--app", "myapp"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing app name"),
        (["myapp"], "missing Kafka plan"),
        (["myapp", "gold-0"], "unknown Kafka plan 'gold-0'"),
        (["myapp", "basic-3"], "unknown Kafka plan 'basic-3'"),
        (["My_App", "basic-0"], "bad app name"),
        (["myapp", "basic-0", "--partitions", "0"], "--partitions must be"),
        (["myapp", "basic-0", "--partitions", "two"], "--partitions must be"),
        (["myapp", "basic-0", "--partitions"], "--partitions needs a number"),
        (["myapp", "standard-0", "--partitions", "257"], "at most 256"),
        (["myapp", "basic-0", "--partitions", "27"], "exceeds the 240 partitions of basic-0"),
        (["myapp", "basic-0", "--force"], "unknown option --force"),
        (["myapp", "basic-0", "extra"], "unexpected argument extra"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    result = setup(*args, "--dry-run")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("heroku-setup: ")
    assert message in lines[0]
    assert "usage: bin/heroku-setup APP PLAN" in lines[0]


def test_bigger_basic_plans_allow_more_partitions() -> None:
    # 13 topics: 36 x 13 = 468 of 480 and 73 x 13 = 949 of 960, their plans' budgets.
    assert setup("myapp", "basic-1", "--partitions", "36", "--dry-run").returncode == 0
    assert setup("myapp", "basic-1", "--partitions", "37", "--dry-run").returncode == 2
    assert setup("myapp", "basic-2", "--partitions=73", "--dry-run").returncode == 0
    assert setup("myapp", "basic-2", "--partitions=74", "--dry-run").returncode == 2


def test_without_the_heroku_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [BASH, str(SCRIPT), "myapp", "basic-0"],
        capture_output=True,
        text=True,
        env={"PATH": str(tmp_path), "HOME": str(tmp_path)},
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "heroku-setup: the heroku CLI is not on PATH: install it, then run: "
        "heroku plugins:install heroku-kafka"
    ]


# -- bin/heroku-setup against a fake heroku CLI ------------------------------------------

FAKE_HEROKU = r"""#!/usr/bin/env bash
# Records its arguments, answers the queries of bin/heroku-setup like the real CLI.
printf '%s\n' "$*" >> "$FAKE_LOG"
case "$1" in
    addons) printf '[{"plan": {"name": "heroku-kafka:basic-0"}}]\n' ;;
    config:get) printf 'wisc-42.\n' ;;
    kafka:topics)
        printf '=== Kafka Topics on KAFKA\n\nName                Messages  Traffic\n'
        printf 'wisc-42.textlines   0/sec     0 bytes/sec\n'
        ;;
    kafka:consumer-groups) printf '=== Kafka Consumer Groups\n\nName\nwisc-42.aggregator-app\n' ;;
    ps:scale)
        [[ -z "${FAKE_SCALE_FAILS:-}" ]] || { echo "Couldn't find that process type" >&2; exit 1; }
        ;;
esac
"""


def fake_run(
    tmp_path: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "heroku"
    fake.write_text(FAKE_HEROKU)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()
    result = setup(
        *args,
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        FAKE_LOG=str(log),
        **env,
    )
    return result, log.read_text().splitlines()


def test_a_real_run_skips_what_exists(tmp_path: Path) -> None:
    result, calls = fake_run(tmp_path, "myapp", "basic-0", "--partitions", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not any(c.startswith("addons:create heroku-kafka") for c in calls)
    assert "addons:create heroku-postgresql:essential-0 --app myapp" in calls
    created = [c.split()[1] for c in calls if c.startswith("kafka:topics:create ")]
    assert created == [t for t in all_topics() if t != "textlines"]
    groups = [c.split()[1] for c in calls if c.startswith("kafka:consumer-groups:create ")]
    assert "aggregator-app" not in groups
    assert "text-processor-app" in groups
    assert calls[-1] == "ps:scale " + " ".join(f"{w}=1" for w in WORKERS) + " --app myapp"
    assert "topic textlines exists" in result.stderr


def test_a_real_run_before_the_first_deploy_says_so(tmp_path: Path) -> None:
    result, _calls = fake_run(tmp_path, "myapp", "basic-0", FAKE_SCALE_FAILS="1")
    assert result.returncode == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("heroku-setup: could not scale the workers: deploy first")


# -- Procfile --------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if not line.strip():
            continue
        match = re.fullmatch(r"([a-z][a-z0-9_]*): (\S.*)", line)
        assert match, f"not a Procfile line: {line!r}"
        assert match.group(1) not in entries
        entries[match.group(1)] = match.group(2)
    return entries


def test_procfile_process_types() -> None:
    assert list(procfile()) == WORKERS + GENERATORS  # no web: nothing listens on $PORT


@pytest.mark.parametrize("process_type", WORKERS + GENERATORS)
def test_procfile_commands_are_modules_with_a_main(process_type: str) -> None:
    words = shlex.split(procfile()[process_type])
    assert words[:2] == ["python", "-m"]
    module = importlib.import_module(words[2])
    assert callable(getattr(module, "main", None))
    assert 'if __name__ == "__main__":' in Path(module.__file__ or "").read_text()
    # The same entry point as a console script of pyproject.toml.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert f"{words[2]}:main" in scripts.values()


@pytest.mark.parametrize("process_type", WORKERS)
def test_procfile_services_start(process_type: str) -> None:
    """Run from the app's directory as Heroku does (`--describe` stops before Kafka)."""
    words = shlex.split(procfile()[process_type])
    result = subprocess.run(
        [sys.executable, *words[1:], "--describe"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Topologies:")


@pytest.mark.parametrize("process_type", GENERATORS)
def test_procfile_generators_accept_their_arguments(process_type: str) -> None:
    """Without KAFKA_URL a generator stops after parsing its arguments, with one line."""
    words = shlex.split(procfile()[process_type])
    assert "--rate" in words  # a modest, explicit rate
    result = subprocess.run(
        [sys.executable, *words[1:]],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "KAFKA_URL is not set" in result.stderr
    assert "usage:" not in result.stderr


# -- app.json --------------------------------------------------------------------------


def app_json() -> dict[str, object]:
    data = json.loads((ROOT / "app.json").read_text())
    assert isinstance(data, dict)
    return data


def test_app_json_basics() -> None:
    app = app_json()
    assert app["name"] and app["description"]
    assert "repository" not in app and "website" not in app  # works from any fork
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    plans = [addon["plan"] for addon in app["addons"]]  # type: ignore[attr-defined]
    assert plans == ["heroku-kafka:basic-0", "heroku-postgresql:essential-0"]


def test_app_json_formation_covers_the_procfile() -> None:
    formation = app_json()["formation"]
    assert isinstance(formation, dict)
    assert set(formation) == set(procfile())
    for process_type, spec in formation.items():
        assert spec["quantity"] == (1 if process_type in WORKERS else 0), process_type
        assert spec["size"].lower() in {"standard-1x", "standard-2x"}, process_type


def source_text() -> str:
    files = [*(ROOT / "services").rglob("*.py"), *(ROOT / "library" / "topicflow").rglob("*.py")]
    return "\n".join(path.read_text() for path in files)


def test_app_json_env_vars_are_read_by_the_code() -> None:
    env = app_json()["env"]
    assert isinstance(env, dict)
    assert env["TOPICFLOW_NUM_STREAM_THREADS"]["value"] == "1"
    source = source_text()
    for name, spec in env.items():
        assert spec["description"], name
        if name.startswith("TOPICFLOW_"):
            # Read as TOPICFLOW_<SETTING> by StreamsConfig.from_env.
            setting = name.removeprefix("TOPICFLOW_").lower()
            value = spec.get("value", "2")
            config = StreamsConfig.from_env("app", {name: value})
            assert str(getattr(config, setting)) == value, name
        else:
            assert f'"{name}"' in source, f"{name} is read by neither services/ nor topicflow"


def test_app_json_thresholds_are_the_codes_defaults() -> None:
    from services.notifications.processors import EMAIL_THRESHOLD, URGENT_THRESHOLD

    env = app_json()["env"]
    assert isinstance(env, dict)
    assert env["ANOMALY_URGENT_THRESHOLD"]["value"] == str(URGENT_THRESHOLD)
    assert env["ANOMALY_EMAIL_THRESHOLD"]["value"] == str(EMAIL_THRESHOLD)


# -- What the Python buildpack needs -----------------------------------------------------


def test_exactly_one_python_package_manager() -> None:
    for other in ("requirements.txt", "poetry.lock", "Pipfile", "Pipfile.lock", "runtime.txt"):
        assert not (ROOT / other).exists(), f"{other} next to uv.lock breaks the Heroku build"
    assert (ROOT / "uv.lock").is_file()
    assert (ROOT / "pyproject.toml").is_file()


def test_python_version_is_supported_and_allowed() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.(11|12|13|14)(\.\d+)?", version), version
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert minimum, requires
    assert int(version.split(".")[1]) >= int(minimum.group(1))


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> tuple[str, tuple[str, ...], str]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?\s*(.*)", text.strip())
    assert match, text
    extras = tuple(sorted(e.strip() for e in (match.group(2) or "").split(",") if e.strip()))
    return _name(match.group(1)), extras, match.group(3).replace(" ", "")


def _locked(entries: list[dict[str, object]]) -> set[tuple[str, tuple[str, ...], str]]:
    return {
        (
            _name(str(e["name"])),
            tuple(sorted(e.get("extras", []))),  # type: ignore[call-overload]
            str(e.get("specifier", "")),
        )
        for e in entries
    }


# The example application at the root, and the workspace members it locks with.
PROJECTS = {".": "topicflow-example", "library": "topicflow", "devtools": "topicflow-dev"}


@pytest.mark.parametrize(("folder", "name"), PROJECTS.items())
def test_uv_lock_matches_pyproject(folder: str, name: str) -> None:
    """The buildpack runs `uv sync --locked`, which fails on a stale lock."""
    pyproject = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == name
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = next(p for p in lock["package"] if p["name"] == name)
    metadata = project["metadata"]
    optional = pyproject["project"].get("optional-dependencies", {}).values()
    assert _locked(metadata["requires-dist"]) == {
        _requirement(r)
        for r in [*pyproject["project"]["dependencies"], *(r for rs in optional for r in rs)]
    }
    for group, requirements in pyproject.get("dependency-groups", {}).items():
        assert _locked(metadata["requires-dev"][group]) == {
            _requirement(r) for r in requirements
        }, group


def test_the_deploy_installs_the_library_but_not_the_dev_tooling() -> None:
    """Heroku installs the root project's dependencies, no default group: the library
    (a workspace member) comes with them, the dev tooling (dev group) does not."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert sorted(pyproject["tool"]["uv"]["workspace"]["members"]) == ["devtools", "library"]
    dependencies = {_requirement(r)[0] for r in pyproject["project"]["dependencies"]}
    assert "topicflow" in dependencies
    assert "topicflow-dev" not in dependencies
    assert "topicflow-dev" in {_requirement(r)[0] for r in pyproject["dependency-groups"]["dev"]}
    assert pyproject["tool"]["uv"]["sources"]["topicflow"] == {"workspace": True}


# -- README ----------------------------------------------------------------------------


def test_readme_deploy_section() -> None:
    readme = (ROOT / "README.md").read_text()
    sections = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert sections.index("Deploy to Heroku") == sections.index("The example system") + 1
    section = readme.split("## Deploy to Heroku", 1)[1].split("\n## ", 1)[0]
    for process_type in re.findall(r"heroku ps:scale ((?:\w+=\d+ ?)+)", section):
        for name in re.findall(r"(\w+)=\d+", process_type):
            assert name in procfile(), name
    assert "bin/heroku-setup" in section
    assert "heroku kafka:topics:write textlines" in section
