"""A GlobalKTable on real Kafka: every instance loads the whole table before it processes.

The global topic has 4 partitions; each instance's global consumer reads all of
them (no group), to the end offsets of its start, before any stream worker
runs. A stream record processed before its user's row would be dropped by the
inner join, so every click joined proves the table was whole. A second
instance started later (two worker processes, each with its own global store)
sees the table too, with what was added since the first one started.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.kafka_tools import create_topics, produce, read_records, wait_until
from topicflow import KafkaStreams, Serdes, State, StreamsBuilder, StreamsConfig
from topicflow_dev import DevEnv


def _topology(users: str, clicks: str, out: str) -> StreamsBuilder:
    builder = StreamsBuilder()
    table = builder.global_table(users)
    # A click's value names its user; the result keeps the click's key.
    builder.stream(clicks).join(table, lambda _k, user: user, lambda u, team: f"{u}@{team}").to(out)
    return builder


def _config(unique: str, bootstrap: str, state_dir: Path, **overrides: object) -> StreamsConfig:
    return StreamsConfig(
        application_id=f"global-{unique}",
        bootstrap_servers=bootstrap,
        default_key_serde=Serdes.String(),
        default_value_serde=Serdes.String(),
        commit_interval_ms=200,
        state_dir=str(state_dir),
        **overrides,  # type: ignore[arg-type]
    )


def _joined(bootstrap: str, out: str) -> dict[str, str]:
    return {
        m.key().decode(): m.value().decode()
        for m in read_records(bootstrap, out)
        if m.key() is not None and m.value() is not None
    }


def test_every_instance_loads_the_global_table_before_processing(
    dev_env: DevEnv, unique: str, tmp_path: Path
) -> None:
    bootstrap = dev_env.bootstrap_servers
    users, clicks, out = (f"{n}-{unique}" for n in ("users", "clicks", "enriched"))
    create_topics(bootstrap, [users], 4)
    create_topics(bootstrap, [clicks, out], 2)
    teams = {f"u{i}": f"team{i % 7}" for i in range(400)}
    produce(
        bootstrap,
        users,
        [t.encode() for t in teams.values()],
        keys=[u.encode() for u in teams],
    )
    # The clicks are there before start: the worker processes them at once.
    first = [(f"c{i}", f"u{i}") for i in range(400)]
    produce(
        bootstrap, clicks, [u.encode() for _c, u in first], keys=[c.encode() for c, _u in first]
    )
    expected = {c: f"{u}@{teams[u]}" for c, u in first}

    builder = _topology(users, clicks, out)
    one = KafkaStreams(builder.build(), _config(unique, bootstrap, tmp_path / "one"))
    one.start()
    try:
        # Loaded in start(), before the worker existed: every record of the table.
        assert one.metrics()["restored_records"] == len(teams)
        wait_until(lambda: len(_joined(bootstrap, out)) == len(first), 60, "first clicks", [])
        assert _joined(bootstrap, out) == expected

        # A user added while the first instance runs: its global thread applies it,
        # and the second instance, started later, loads it with the rest.
        teams["u999"] = "late-team"
        produce(bootstrap, users, [b"late-team"], keys=[b"u999"])
        two = KafkaStreams(
            _topology(users, clicks, out).build(),
            _config(unique, bootstrap, tmp_path / "two", num_stream_threads=2),
        )
        two.start()
        try:
            # Two worker processes, each loading its own copy of the table.
            wait_until(
                lambda: two.metrics().get("restored_records", 0) == 2 * len(teams),
                60,
                "both worker processes loaded the table",
                [],
                lambda: str(two.metrics()),
            )
            wait_until(
                lambda: one.state is State.RUNNING and two.state is State.RUNNING,
                60,
                "both instances running",
                [],
            )
            # Clicks for every user, the new one too, spread over both instances.
            second = [(f"d{i}", f"u{i % 400}") for i in range(400)] + [("d-late", "u999")]
            produce(
                bootstrap,
                clicks,
                [u.encode() for _c, u in second],
                keys=[c.encode() for c, _u in second],
            )
            expected.update({c: f"{u}@{teams[u]}" for c, u in second})
            wait_until(
                lambda: len(_joined(bootstrap, out)) == len(expected),
                90,
                "every click joined",
                [],
                lambda: f"{len(_joined(bootstrap, out))} of {len(expected)}",
            )
            assert _joined(bootstrap, out) == expected
            # Both instances processed some of them.
            assert two.tasks() and any(two.tasks().values())
        finally:
            assert two.close(30)
        assert two.error is None
    finally:
        assert one.close(30)
    assert one.error is None
