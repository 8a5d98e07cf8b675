"""Both sides of a conformance run: topicflow's test driver here, Kafka Streams' in a JVM.

`run_topicflow(cases)` and `run_kafka_streams(cases)` return one result per
case, in the same form (see README.md), so `compare` can set them side by
side. The Java oracle is built with Maven on first use into `.dev/conformance`
and rebuilt whenever its sources change.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.conformance.cases import Case
from tests.conformance.topologies import build
from topicflow import Serdes, StreamsConfig
from topicflow.testing import TopologyTestDriver

ROOT = Path(__file__).resolve().parents[2]
ORACLE = Path(__file__).resolve().parent / "oracle"
BUILD = ROOT / ".dev" / "conformance" / "oracle"
CACHE_BYTES = 10 * 1024 * 1024

Result = dict[str, Any]  # {"id", "outputs": {topic: [[key, value, ts], ...]}, "error"}


# -- topicflow -----------------------------------------------------------------------


def run_topicflow_case(case: Case) -> Result:
    outputs: dict[str, list[list[Any]]] = {}
    error: str | None = None
    config = StreamsConfig(
        application_id="conformance",
        statestore_cache_max_bytes=CACHE_BYTES if case["caching"] else 0,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        tune_gc=False,
    )
    driver: TopologyTestDriver | None = None
    try:
        driver = TopologyTestDriver(build(case["topology"]), config)
        for step in case["steps"]:
            if step[0] == "wall":
                driver.advance_wall_clock_time(step[1])
            else:
                topic, key, value, timestamp = step
                driver.pipe_raw(topic, _utf8(key), _utf8(value), timestamp)
    except Exception as exc:  # the oracle reports Kafka's exceptions the same way
        error = f"{type(exc).__name__}: {exc}"
    if driver is not None:
        for topic in driver.producer_topics():
            if topic.startswith("out"):
                out = driver.create_output_topic(topic)
                records = [[r.key, r.value, r.timestamp] for r in out.read_records_to_list()]
                if records:
                    outputs[topic] = records
        try:
            driver.close()
        except Exception as exc:
            error = error or f"{type(exc).__name__}: {exc}"
    return {"id": case["id"], "outputs": dict(sorted(outputs.items())), "error": error}


def _utf8(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def run_topicflow(cases: list[Case]) -> list[Result]:
    return [run_topicflow_case(case) for case in cases]


# -- Kafka Streams -------------------------------------------------------------------


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(ORACLE.rglob("*")):
        if path.is_file() and "target" not in path.relative_to(ORACLE).parts:
            digest.update(str(path.relative_to(ORACLE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def build_oracle() -> list[str]:
    """Build the oracle if its sources changed; return the java command that runs it."""
    stamp = BUILD / "sources.sha256"
    digest = _sources_digest()
    jar = BUILD / "conformance-oracle.jar"
    if not (jar.exists() and stamp.exists() and stamp.read_text() == digest):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError("mvn not found: install Maven (apt-get install maven)")
        BUILD.mkdir(parents=True, exist_ok=True)
        log = BUILD / "maven.log"
        with log.open("wb") as out:
            code = subprocess.run(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(ORACLE / "pom.xml"),
                    "package",
                    "-DskipTests",
                    f"-Dconformance.build={BUILD}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if code != 0 or not jar.exists():
            raise RuntimeError(f"building the Kafka Streams oracle failed (exit {code}); see {log}")
        stamp.write_text(digest)
    java = shutil.which("java") or "java"
    classpath = os.pathsep.join([str(jar), str(BUILD / "lib" / "*")])
    return [
        java,
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
        classpath,
        "topicflow.conformance.Oracle",
    ]


def run_kafka_streams(cases: list[Case]) -> list[Result]:
    command = build_oracle()
    payload = "".join(json.dumps(case) + "\n" for case in cases)
    done = subprocess.run(
        command, input=payload.encode(), capture_output=True, check=False, timeout=1800
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"the Kafka Streams oracle exited {done.returncode}: "
            + done.stderr.decode(errors="replace")[-2000:]
        )
    results = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
    if len(results) != len(cases):
        raise RuntimeError(f"the oracle answered {len(results)} of {len(cases)} cases")
    return results
