"""tune_gc: a running stream worker freezes the objects alive at start and makes
young-generation collections rarer; tune_gc=False leaves the collector alone.

Each case runs in its own interpreter: the tuning is process-wide, once per process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import gc, json, sys, time
from topicflow import KafkaStreams, Serdes, State, StreamsBuilder, StreamsConfig
from topicflow.brokers.embedded import EmbeddedBroker

before = gc.get_threshold()
builder = StreamsBuilder()
builder.stream("in").map_values(str.upper).to("out")
config = StreamsConfig(
    application_id="gc-test", default_key_serde=Serdes.String(),
    default_value_serde=Serdes.String(), poll_ms=10, tune_gc=sys.argv[1] == "on",
    state_dir=sys.argv[2],
)
streams = KafkaStreams(builder.build(), config, broker=EmbeddedBroker())
streams.start()
deadline = time.monotonic() + 20
while streams.state is not State.RUNNING and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.2)
print(json.dumps({"state": streams.state.name, "before": before,
                  "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
streams.close()
"""


def _run(setting: str, state_dir: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, setting, str(state_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["state"] == "RUNNING", done.stderr
    return result


@pytest.mark.parametrize("setting", ["on", "off"])
def test_the_collector_is_tuned_only_when_asked(setting: str, tmp_path: Path) -> None:
    from topicflow.runtime.gc_tuning import GC_MIDDLE_THRESHOLD, GC_YOUNG_THRESHOLD

    result = _run(setting, tmp_path)
    before = result["before"]
    assert isinstance(before, list)
    if setting == "on":
        assert result["after"] == [GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, before[2]]
        assert isinstance(result["frozen"], int) and result["frozen"] > 1000
    else:
        assert result["after"] == before
        assert result["frozen"] == 0
