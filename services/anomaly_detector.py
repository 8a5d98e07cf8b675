"""Anomaly Detector: failed logins per user per 10-second window -> alerts and emails.

The blog's Java snippet, ported, with its defects fixed:

    builder.stream(f"{prefix}loglines")
        # Every line checked: a malformed one raises MalformedLogLine (below).
        .filter(lambda _key, line: line is not None and check_log_line(line)[1] == FAILED_LOGIN)
        .select_key(lambda _key, line: user_of(line))       # "alice", not "user_id: alice "
        .group_by_key()
        .windowed_by(TimeWindows.of_size_and_grace(WINDOW, GRACE))
        .count(Materialized.as_("failed-logins"))
        .to_stream()
        .split()
            .branch(count > urgent threshold)  -> first per window -> AlertSink -> anomalies
            .branch(count > email threshold)   -> first per window -> EmailSink -> anomalies

Counts are emitted as they change (at each commit), so an attack is reported
within a second of crossing a threshold, not when its window closes; the
"first per window" step remembers, in a changelogged store, which (user,
window, severity) was already notified, so one attack pages once, not fifty
times as the Java example did. That store is flushed to its changelog only
after the sinks have delivered (see StreamTask: stores that do not forward
flush last), so a failed delivery followed by a crash sends the alert again
rather than never.

A line not in the format (services/logs.py: an epoch timestamp, an address
such as 999.1.1.1, a missing, extra or misplaced field, an empty line) makes
`check_log_line` raise MalformedLogLine, whose message says what is wrong and
shows the start of the line. Every line is checked, whatever its action, at
about 1.5 µs a line. The service runs with
processing_exception_handler="log_and_continue", so the runtime counts the
record (metric `processing_errors`), logs it (rate-limited, the message as the
sample), sends it to the dead-letter queue if one is configured
(errors_dead_letter_queue_topic_name), and goes on; with "log_and_fail" a
malformed line stops the service. A malformed line is never counted as a failed
login, not even one whose only fault is its timestamp (the window uses the
record's Kafka timestamp, not the line's): a line that does not follow the
format cannot be trusted field by field (a missing or extra field shifts the
others, and the wrong user would be counted), and counting it would hide the
producer's problem, which the dead letter and the logged sample show at once.
The operator fixes the producer and replays the dead letters. A null value (a
tombstone) is skipped without a word: there is nothing to count and nothing
wrong. An empty line is malformed.
"""

from __future__ import annotations

import functools
import os
from datetime import timedelta
from typing import Any

from services.logs import FAILED_LOGIN, check_log_line, user_of
from services.notifications.processors import (
    EMAIL_THRESHOLD,
    URGENT_THRESHOLD,
    AlertSink,
    EmailSink,
    UserCount,
)
from services.service import SERVICE_SETTINGS, Service
from services.users import profile_of
from topicflow import (
    Branched,
    ConfigError,
    Materialized,
    Named,
    Processor,
    ProcessorContext,
    Record,
    Serdes,
    StreamsBuilder,
    TimeWindows,
    Topology,
    Windowed,
)
from topicflow.state.stores import StoreSpec

WINDOW = timedelta(seconds=10)
# As in the Aggregator: the user key goes through a repartition topic, where a
# lagging upstream instance's records arrive late; counts are emitted as they
# change, so grace costs memory (windows kept), not alert latency.
GRACE = timedelta(minutes=5)
COUNTS_STORE = "failed-logins"
NOTIFIED_STORE = "notified"
USERS_STORE = "users"


def user_of_window(windowed: Windowed[str], _count: int) -> str:
    """The users table's key of a windowed count: the user id."""
    return windowed.key


def with_profile(count: int, profile: str | None) -> UserCount:
    """A count joined with its user's profile (None: the users table has none, or a bad one)."""
    return UserCount(count, profile_of(profile))


class FirstPerWindow(Processor[Windowed[str], int, Windowed[str], int]):
    """Forwards a windowed count the first time its (user, window, severity) is seen."""

    def __init__(self, severity: str) -> None:
        self._severity = severity

    def init(self, context: ProcessorContext[Windowed[str], int]) -> None:
        self.context = context
        self._notified = context.get_state_store(NOTIFIED_STORE)

    def process(self, record: Record[Windowed[str], int]) -> None:
        if record.value is None:
            return
        key = f"{self._severity}:{record.key.key}"
        start = record.key.window.start
        if self._notified.fetch(key, start) is not None:
            return
        self._notified.put(key, 1, start)
        self.context.forward(record)


def threshold_from_env(variable: str, default: int) -> int:
    raw = os.environ.get(variable)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{variable} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{variable} must not be negative, got {value}")
    return value


def build_topology(
    prefix: str = "",
    alerts: Any = None,
    emails: Any = None,
    urgent_threshold: int | None = None,
    email_threshold: int | None = None,
) -> Topology:
    urgent = (
        urgent_threshold
        if urgent_threshold is not None
        else threshold_from_env("ANOMALY_URGENT_THRESHOLD", URGENT_THRESHOLD)
    )
    email = (
        email_threshold
        if email_threshold is not None
        else threshold_from_env("ANOMALY_EMAIL_THRESHOLD", EMAIL_THRESHOLD)
    )
    if email > urgent:
        raise ConfigError(
            f"the email threshold ({email}) must not exceed the urgent threshold ({urgent})"
        )
    alerts = alerts if alerts is not None else AlertSink.from_env(prefix, threshold=urgent)
    emails = emails if emails is not None else EmailSink.from_env(prefix, threshold=email)
    windows = TimeWindows.of_size_and_grace(WINDOW, GRACE)
    retention = windows.size_ms + windows.grace_ms

    builder = StreamsBuilder()
    users = builder.global_table(f"{prefix}users", materialized=Materialized.as_(USERS_STORE))
    builder.add_state_store(
        StoreSpec(
            NOTIFIED_STORE,
            "window",
            Serdes.String(),
            Serdes.Long(),
            retention_ms=retention,
            window_size_ms=windows.size_ms,
            changelog_config={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(retention + 24 * 3600 * 1000),
            },
        )
    )
    branches = (
        builder.stream(f"{prefix}loglines")
        # Every line is checked: a malformed one raises MalformedLogLine, which the
        # runtime counts, logs and dead-letters (see the module's docstring). A
        # tombstone is nothing to count and nothing wrong.
        .filter(lambda _key, line: line is not None and check_log_line(line)[1] == FAILED_LOGIN)
        .select_key(lambda _key, line: user_of(line))
        .group_by_key()
        .windowed_by(windows)
        .count(Materialized.as_(COUNTS_STORE).with_retention(retention))
        .to_stream()
        .split(Named.as_("severity-"))
        .branch(lambda _user, count: count > urgent, Branched.as_("urgent"))
        .branch(lambda _user, count: count > email, Branched.as_("email"))
        .no_default_branch()
    )
    for severity, sink in (("urgent", alerts), ("email", emails)):
        (
            branches[f"severity-{severity}"]
            .process(functools.partial(FirstPerWindow, severity), NOTIFIED_STORE)
            .left_join(users, user_of_window, with_profile)
            .process(sink)
            # The audit topic is keyed by user id; the JSON value has the window.
            .select_key(lambda windowed, _json: windowed.key)
            .to(f"{prefix}anomalies")
        )
    return builder.build()


SERVICE = Service(
    name="anomaly-detector",
    application_name="anomaly-detector-app",
    # users: the compacted users table (services/users.py), read whole by every instance.
    input_topics=("loglines", "users"),
    output_topics=("anomalies",),
    build_topology=build_topology,
    # SERVICE_SETTINGS skip what cannot be processed: a malformed log line raises,
    # and is counted, logged and dead-lettered, where log_and_fail would stop the
    # service on it, and again at every restart.
    settings=SERVICE_SETTINGS,
)


def main(argv: list[str] | None = None) -> int:
    return SERVICE.main(
        argv, description="failed logins per user per 10 s window -> alerts and emails"
    )


if __name__ == "__main__":
    raise SystemExit(main())
