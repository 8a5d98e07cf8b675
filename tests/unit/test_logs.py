"""Log lines (services.logs) and their generator (services.generate_logs)."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import ip_address, ip_network

import pytest

from services import generate_logs
from services.generate_logs import (
    attacker_ids,
    failed_login_counts,
    log_lines,
    produce_log_lines,
    user_ids,
)
from services.logs import (
    FAILED_LOGIN,
    SAMPLE_CHARS,
    LogLine,
    MalformedLogLine,
    check_log_line,
    format_log_line,
    is_failed_login,
    parse_log_line,
    user_of,
)
from topicflow.brokers.embedded import EmbeddedBroker
from topicflow.errors import ConfigError, StreamsException

LINE = (
    "user_id: alice | timestamp: 2026-11-25 10:00:00 +0000 | ip_address: 10.1.2.3 | "
    "action: login failed | message: three random words"
)
T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
WINDOW_MS = 10_000


# -- format and parse ------------------------------------------------------------------------------


def test_format_is_the_original_examples() -> None:
    assert format_log_line("alice", T0, "10.1.2.3", "login failed", "three random words") == LINE


def test_format_takes_epoch_ms_naive_and_other_zones() -> None:
    assert format_log_line("alice", T0_MS + 999, "10.1.2.3", "login failed", "x y z") == (
        LINE.replace("three random words", "x y z")
    )
    naive = datetime(2026, 11, 25, 10, 0, 0)
    assert "timestamp: 2026-11-25 10:00:00 +0000 |" in format_log_line("a", naive, "::1", "b", "")
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    line = format_log_line("a", paris, "10.0.0.1", "login failed", "m")
    assert "timestamp: 2026-11-25 11:00:00 +0100 |" in line
    parsed = parse_log_line(line)
    assert parsed is not None and parsed.timestamp_ms == T0_MS


def test_parse_round_trip() -> None:
    parsed = parse_log_line(LINE)
    assert parsed == LogLine("alice", T0, "10.1.2.3", "login failed", "three random words")
    assert parsed.timestamp_ms == T0_MS
    assert parsed.is_failed_login
    assert parsed.format() == LINE
    assert parse_log_line(LINE.encode()) == parsed


@pytest.mark.parametrize(
    "line",
    [
        # No spaces, many spaces, tabs, a trailing newline.
        "user_id:alice|timestamp:2026-11-25 10:00:00 +0000|ip_address:10.1.2.3|"
        "action:login failed|message:three random words",
        "  user_id :   alice  |  timestamp:  2026-11-25   10:00:00  +0000 | ip_address : "
        "10.1.2.3 |action:  login   failed |message:   three random words   ",
        "user_id:\talice\t|\ttimestamp: 2026-11-25 10:00:00 +0000 | ip_address: 10.1.2.3 | "
        "action: login failed | message: three random words\n",
        # Other spellings of the same instant.
        LINE.replace("+0000", "+00:00"),
        LINE.replace("2026-11-25 10:00:00 +0000", "2026-11-25T10:00:00Z"),
        LINE.replace("2026-11-25 10:00:00 +0000", "2026-11-25 11:00:00 +0100"),
        LINE.replace("2026-11-25 10:00:00 +0000", "2026-11-25T10:00:00"),  # naive: UTC
    ],
)
def test_parse_is_tolerant(line: str) -> None:
    parsed = parse_log_line(line)
    assert parsed is not None, line
    assert (parsed.user_id, parsed.ip_address, parsed.action) == (
        "alice",
        "10.1.2.3",
        "login failed",
    )
    assert parsed.message == "three random words"
    assert parsed.timestamp_ms == T0_MS
    assert user_of(line) == "alice"
    assert is_failed_login(line)


def test_parse_keeps_a_message_holding_the_separator_and_ipv6() -> None:
    line = format_log_line("bob", T0, "2001:db8::1", "login succeeded", "a | b: c")
    parsed = parse_log_line(line)
    assert parsed is not None
    assert (parsed.ip_address, parsed.message) == ("2001:db8::1", "a | b: c")
    assert not is_failed_login(line)


@pytest.mark.parametrize(
    "line",
    [
        None,
        "",
        "   ",
        "hello world",
        b"\xff\xfe not utf-8",
        "user_id: alice",
        # A field missing, renamed, or out of order.
        "user_id: alice | timestamp: 2026-11-25 10:00:00 +0000 | ip_address: 10.1.2.3 | "
        "action: login failed",
        LINE.replace("user_id:", "user:"),
        LINE.replace("ip_address: 10.1.2.3 | action: login failed", "action: login failed | "),
        LINE.replace("| ip_address: 10.1.2.3 ", "| ip_address 10.1.2.3 "),
        # Empty or malformed values.
        LINE.replace("user_id: alice", "user_id:   "),
        LINE.replace("action: login failed", "action: "),
        LINE.replace("10.1.2.3", "10.1.2.300"),
        LINE.replace("10.1.2.3", "somewhere"),
        LINE.replace("2026-11-25 10:00:00 +0000", "yesterday"),
        LINE.replace("2026-11-25 10:00:00 +0000", "2026-13-25 10:00:00 +0000"),
    ],
)
def test_parse_rejects_lines_not_in_the_format(line: str | bytes | None) -> None:
    assert parse_log_line(line) is None


def test_user_of() -> None:
    assert user_of(LINE) == "alice"
    assert user_of("user_id:  bob   |  whatever") == "bob"
    assert user_of("user_id: carol") == "carol"
    # Not the Java example's "user_id: alice " key.
    assert user_of(LINE) != LINE.split("|", maxsplit=1)[0]
    for junk in (None, "", "alice | x", "user: alice | x", "user_id:  | x", "user_id alice | x"):
        assert user_of(junk) is None, junk


def test_is_failed_login_reads_the_action_not_the_message() -> None:
    assert is_failed_login(LINE)
    assert not is_failed_login(LINE.replace("action: login failed", "action: login succeeded"))
    # The Java example's `contains("login failed")` counts this line; the action says otherwise.
    decoy = format_log_line("dave", T0, "10.0.0.1", "login succeeded", "after login failed twice")
    assert "login failed" in decoy
    assert not is_failed_login(decoy)
    assert is_failed_login(LINE.replace("login failed", "login    failed"))
    for junk in (None, "", "login failed", "a | b | c | action: login failed"):
        assert not is_failed_login(junk), junk


def test_cheap_helpers_agree_with_the_parser_on_generated_lines() -> None:
    for _, line in itertools.islice(log_lines(seed=3, failed_share=0.3, attackers=1), 3000):
        parsed = parse_log_line(line)
        assert parsed is not None
        assert user_of(line) == parsed.user_id
        assert is_failed_login(line) == parsed.is_failed_login


# -- malformed lines -------------------------------------------------------------------------------

STAMP = "2026-11-25 10:00:00 +0000"
ORDER = "the order is user_id | timestamp | ip_address | action | message"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        pytest.param(
            LINE.replace(STAMP, str(T0_MS)),
            f"timestamp '{T0_MS}' is not 'YYYY-MM-DD HH:MM:SS +ZZZZ' (epoch milliseconds?)",
            id="epoch-ms",
        ),
        pytest.param(
            LINE.replace(STAMP, str(T0_MS // 1000)),
            f"timestamp '{T0_MS // 1000}' is not 'YYYY-MM-DD HH:MM:SS +ZZZZ' (epoch seconds?)",
            id="epoch-s",
        ),
        pytest.param(
            LINE.replace(STAMP, "yesterday"),
            "timestamp 'yesterday' is not 'YYYY-MM-DD HH:MM:SS +ZZZZ'",
            id="timestamp-words",
        ),
        pytest.param(
            LINE.replace(STAMP, "2026-02-30 10:00:00 +0000"),
            "timestamp '2026-02-30 10:00:00 +0000' is not 'YYYY-MM-DD HH:MM:SS +ZZZZ'",
            id="no-such-day",
        ),
        pytest.param(LINE.replace(STAMP, " "), "timestamp is empty", id="timestamp-empty"),
        pytest.param(
            LINE.replace("10.1.2.3", "999.1.1.1"),
            "ip_address '999.1.1.1' is not an IPv4 or IPv6 address",
            id="ip-999",
        ),
        pytest.param(
            LINE.replace("ip_address: 10.1.2.3 | ", ""),
            "4 of 5 fields, missing ip_address",
            id="missing-field",
        ),
        pytest.param(
            "user_id: alice | timestamp: 2026-11-25 10:00:00 +0000 | ip_address: 10.1.2.3",
            "3 of 5 fields, missing action, message",
            id="missing-fields",
        ),
        pytest.param(
            LINE.replace("alice | timestamp", "alice || timestamp"),
            "field 2 is empty where 'timestamp' belongs (an extra '|'?)",
            id="extra-bars",
        ),
        pytest.param(
            f"timestamp: {STAMP} | user_id: alice | ip_address: 10.1.2.3 | "
            "action: login failed | message: three random words",
            f"field 1 is 'timestamp' where 'user_id' belongs: {ORDER}",
            id="out-of-order",
        ),
        pytest.param(
            "user_id: alice | timestamp: 2026-11-25 10:00:00 +0000 | action: login failed | "
            "ip_address: 10.1.2.3 | message: three random words",
            f"field 3 is 'action' where 'ip_address' belongs: {ORDER}",
            id="out-of-order-later",
        ),
        pytest.param(
            LINE.replace("user_id: alice", "user_id:  "), "user_id is empty", id="no-user"
        ),
        pytest.param(
            LINE.replace("user_id:", "user:"), "field 1 is 'user', not 'user_id'", id="unknown-name"
        ),
        pytest.param(
            LINE.replace("ip_address: 10.1.2.3", "ip_address 10.1.2.3"),
            "field 3 'ip_address 10.1.2.3' is not 'ip_address: <value>'",
            id="no-colon",
        ),
        pytest.param(
            LINE.replace("action: login failed", "action:  "), "action is empty", id="no-action"
        ),
        pytest.param(
            "\x00\x1b[31m\u00bf\u00f1\u20ac\u2603 login failed \u202e\ufffd",
            "1 of 5 fields, missing user_id, timestamp, ip_address, action, message",
            id="non-ascii-garbage",
        ),
        pytest.param("", "empty line", id="empty"),
        pytest.param(" \t\r\n", "empty line", id="blank"),
        pytest.param(b"\xff\xfe not utf-8", "not UTF-8 (byte 0: invalid start byte)", id="bytes"),
    ],
)
def test_malformed_lines_raise_naming_the_problem_with_a_sample(
    line: str | bytes, problem: str
) -> None:
    with pytest.raises(MalformedLogLine) as caught:
        check_log_line(line)
    shown = repr(line[:SAMPLE_CHARS])
    if len(line) > SAMPLE_CHARS:
        shown += f"... ({len(line)} characters)"
    assert str(caught.value) == f"malformed log line: {problem}: {shown}"
    assert isinstance(caught.value, ValueError)
    # The same rules for both readers.
    assert parse_log_line(line) is None


def test_a_null_value_is_malformed_for_the_checker_and_none_for_the_parser() -> None:
    with pytest.raises(MalformedLogLine, match=r"^malformed log line: no value \(a null record\)$"):
        check_log_line(None)
    assert parse_log_line(None) is None


def test_the_sample_is_truncated_and_shows_control_characters() -> None:
    long_message = "\x1b[2J" + "x" * 10_000
    line = LINE.replace(STAMP, "\t" + str(T0_MS)).replace("three random words", long_message)
    with pytest.raises(MalformedLogLine) as caught:
        check_log_line(line)
    message = str(caught.value)
    assert message == (
        f"malformed log line: timestamp '{T0_MS}' is not 'YYYY-MM-DD HH:MM:SS +ZZZZ' "
        f"(epoch milliseconds?): {line[:SAMPLE_CHARS]!r}... ({len(line):,} characters)"
    )
    assert "\\t" in message and "\\x1b" in message  # escaped, as repr shows them
    assert "\x1b" not in message and "\t" not in message
    # A huge field value is cut short too.
    with pytest.raises(MalformedLogLine) as caught:
        check_log_line(LINE.replace("10.1.2.3", "9" * 100_000))
    assert f"ip_address '{'9' * 40}'... is not" in str(caught.value)
    assert len(str(caught.value)) < 400


def test_good_lines_give_the_user_and_action_the_parser_and_the_cheap_helpers_give() -> None:
    lines = [line for _, line in itertools.islice(log_lines(seed=3, failed_share=0.3), 3000)]
    lines += [format_log_line("bob", T0, "2001:db8::1", "login succeeded", "a | b: c")]
    actions: Counter[str] = Counter()
    for line in lines:
        parsed = parse_log_line(line)
        assert parsed is not None, line
        user_id, action = check_log_line(line)
        assert (user_id, action) == (parsed.user_id, parsed.action) == (user_of(line), action)
        assert (action == FAILED_LOGIN) == is_failed_login(line)
        assert check_log_line(line.encode()) == (user_id, action)
        actions[action] += 1
    assert set(actions) == {"login failed", "login succeeded"}


@pytest.mark.parametrize(
    "line",
    [
        "user_id:   alice  |timestamp: 2026-11-25 10:00:00 +0000|ip_address: 10.1.2.3"
        " | action:  login   failed | message: try",
        # A timestamp padded past what the timestamp cache holds is still read.
        LINE.replace(STAMP, "2026-11-25" + " " * 100 + "10:00:00\t+0000"),
        LINE.replace(STAMP, "2026-11-25T10:00:00Z"),
        LINE.replace("10.1.2.3", "::ffff:10.1.2.3"),
        LINE.replace("three random words", "a | b | action: login succeeded"),
        LINE.replace("action: login failed", "action: password reset"),  # any action
    ],
)
def test_the_checker_is_as_tolerant_as_the_parser(line: str) -> None:
    parsed = parse_log_line(line)
    assert parsed is not None
    assert check_log_line(line) == (parsed.user_id, parsed.action)
    assert parsed.user_id == "alice"


# -- the generator ---------------------------------------------------------------------------------


def lines_until(end_ms: int, **kwargs: object) -> list[tuple[int, str]]:
    """The generator's lines with a timestamp before `end_ms`, on a clock starting at 0."""
    return list(
        itertools.takewhile(lambda pair: pair[0] < end_ms, log_lines(**kwargs))  # type: ignore[arg-type]
    )


# Written apart from services.logs on purpose: the ground truth must not share its parser.
_GROUND_TRUTH = re.compile(
    r"^user_id: (?P<user>[^ |]+) \| timestamp: [^|]+ \| ip_address: [^ |]+ \| "
    r"action: (?P<action>login failed|login succeeded) \| message: .*$"
)


def ground_truth(lines: Iterable[tuple[int, str]]) -> Counter[tuple[str, int]]:
    """Failed logins per (user, epoch-aligned 10 s window of the record timestamp)."""
    counts: Counter[tuple[str, int]] = Counter()
    for timestamp, line in lines:
        match = _GROUND_TRUTH.match(line)
        assert match is not None, line
        if match["action"] == "login failed":
            counts[match["user"], timestamp // WINDOW_MS * WINDOW_MS] += 1
    return counts


def crossings(counts: Counter[tuple[str, int]], threshold: int) -> set[tuple[str, int]]:
    """(user, window start) whose count exceeds `threshold`."""
    return {key for key, count in counts.items() if count > threshold}


def test_same_seed_same_lines_other_seed_other_lines() -> None:
    first = list(itertools.islice(log_lines(seed=7), 2000))
    again = list(itertools.islice(log_lines(seed=7), 2000))
    other = list(itertools.islice(log_lines(seed=8), 2000))
    assert first == again
    assert first != other


def test_lines_are_in_timestamp_order_and_carry_their_second() -> None:
    lines = list(itertools.islice(log_lines(seed=1, start_ms=T0_MS), 5000))
    timestamps = [t for t, _ in lines]
    assert timestamps == sorted(timestamps)
    assert timestamps[0] >= T0_MS
    for timestamp, line in lines:
        parsed = parse_log_line(line)
        assert parsed is not None, line
        assert parsed.timestamp_ms == timestamp // 1000 * 1000


def test_users_attackers_and_addresses() -> None:
    assert user_ids(3) == ["alice", "bob", "carol"]
    assert len(set(user_ids(500))) == 500
    assert attacker_ids(5) == ["mallory", "trudy", "oscar", "chuck", "mallory1"]
    assert not set(user_ids(500)) & set(attacker_ids(50))
    lines = lines_until(60_000, seed=2, users=50, attackers=3)
    private = ip_network("10.0.0.0/8")
    test_nets = [ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
    seen_users: set[str] = set()
    for _, line in lines:
        parsed = parse_log_line(line)
        assert parsed is not None
        address = ip_address(parsed.ip_address)
        seen_users.add(parsed.user_id)
        if parsed.user_id in attacker_ids(3):
            assert parsed.is_failed_login
            assert any(address in net for net in test_nets)
        else:
            assert parsed.user_id in user_ids(50)
            assert address in private
    assert set(attacker_ids(3)) <= seen_users


def test_rates_and_failed_share() -> None:
    lines = lines_until(60_000, seed=4, rate=200.0, attackers=2, attack_rate=15.0)
    attackers = attacker_ids(2)
    normal = [line for _, line in lines if user_of(line) not in attackers]
    # One line per slot of 1/rate s: exact to one.
    assert abs(len(normal) - 200 * 60) <= 1
    share = sum(is_failed_login(line) for line in normal) / len(normal)
    assert 0.04 < share < 0.06
    per_attacker = Counter(user_of(line) for _, line in lines if user_of(line) in attackers)
    # Attackers start within the first 10 s, then 15/s.
    for attacker in attackers:
        assert 50 * 15 - 1 <= per_attacker[attacker] <= 60 * 15 + 1


def test_ground_truth_matches_failed_login_counts() -> None:
    lines = lines_until(90_000, seed=5, users=20, failed_share=0.2, attackers=2)
    truth = ground_truth(lines)
    assert failed_login_counts(lines) == truth
    assert sum(truth.values()) == sum(is_failed_login(line) for _, line in lines)


def test_with_defaults_attackers_cross_both_thresholds_and_normal_users_neither() -> None:
    end_ms = 300_000
    lines = lines_until(end_ms, seed=0)
    counts = ground_truth(lines)
    attackers = attacker_ids(generate_logs.DEFAULT_ATTACKERS)
    assert len(attackers) >= 1
    for attacker in attackers:
        starts = sorted(w for (user, w) in counts if user == attacker)
        # Every window after the one the attack starts in holds about 150 failed logins.
        full = [w for w in starts[1:] if w + WINDOW_MS <= end_ms]
        assert len(full) >= 25
        for window in full:
            assert counts[attacker, window] > 100
    urgent, email = crossings(counts, 100), crossings(counts, 50)
    assert {user for user, _ in urgent} == set(attackers)
    assert {user for user, _ in email} == set(attackers)
    normal_max = max(n for (user, _), n in counts.items() if user not in attackers)
    assert normal_max < 50 // 2  # far below the email threshold


def test_a_slower_attack_crosses_only_the_email_threshold() -> None:
    counts = ground_truth(lines_until(120_000, seed=6, attackers=1, attack_rate=7.0))
    assert crossings(counts, 100) == set()
    assert {user for user, _ in crossings(counts, 50)} == {"mallory"}


def test_normal_users_cross_when_they_fail_a_lot() -> None:
    counts = ground_truth(lines_until(30_000, seed=1, users=2, failed_share=0.5, attackers=0))
    assert {user for user, _ in crossings(counts, 100)} == {"alice", "bob"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "users must be at least 1"),
        ({"rate": 0.0}, "rate must be positive"),
        ({"failed_share": 1.5}, "failed share must be between 0 and 1"),
        ({"attackers": -1}, "attackers must not be negative"),
        ({"attack_rate": 0.0}, "attack rate must be positive"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        log_lines(**kwargs)  # type: ignore[arg-type]


# -- producing -------------------------------------------------------------------------------------


def test_produce_log_lines_sends_values_with_their_timestamps_and_no_key() -> None:
    broker = EmbeddedBroker(default_partitions=1)
    lines = list(itertools.islice(log_lines(seed=9, rate=100_000.0, start_ms=T0_MS), 500))
    # Every line is due (its timestamp is before the start): they go at once.
    start_ms = lines[-1][0]
    sent = produce_log_lines(
        broker.producer({}), "loglines", lines, start_ms, count=300, progress=False
    )
    assert sent == 300
    records = broker.read_all("loglines")
    assert [(key, value, ts) for _, _, key, value, ts, _ in records] == [
        (None, line.encode(), ts) for ts, line in lines[:300]
    ]


def test_produce_log_lines_says_when_the_broker_did_not_take_the_lines() -> None:
    broker = EmbeddedBroker(default_partitions=1)
    lines = list(itertools.islice(log_lines(seed=9, rate=100_000.0), 20))
    with pytest.raises(StreamsException) as caught:
        produce_log_lines(broker.producer({}), "no such topic", lines, lines[-1][0], 0, False)
    message = str(caught.value)
    assert message.startswith("20 of 20 lines were not delivered to no such topic (")
    assert "Illegal topic name" in message


def test_command_without_kafka_url_says_to_run_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_URL", raising=False)
    assert generate_logs.main(["--count", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "generate-logs: KAFKA_URL is not set, and the embedded broker lives inside one process: "
        "run `topicflow demo` to see the services on it"
    ]


def test_command_with_bad_arguments_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_URL", "kafka://127.0.0.1:1")
    assert generate_logs.main(["--failed-share", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["generate-logs: failed share must be between 0 and 1, got 2.0"]


def _slow_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def test_the_fast_paths_read_what_ipaddress_and_strptime_read() -> None:
    """The IPv4 and fixed-width timestamp fast paths agree with the library parsers,
    on valid input and on near-misses (leading zeros, 256, Unicode digits, bad dates)."""
    import random

    from services.logs import (
        TIMESTAMP_FORMAT,
        _is_ip_address,
        _parse_fixed_timestamp,
        _parse_timestamp,
    )

    rng = random.Random(5)
    octets = ["0", "1", "9", "10", "99", "100", "255", "256", "01", "00", "999", "+1", ""]
    octets += ["\u00b2", "\u0661"]  # superscript two, Arabic-Indic one: digits, not ASCII
    for _ in range(20_000):
        parts = [rng.choice(octets) for _ in range(rng.choice([3, 4, 4, 4, 5]))]
        text = ".".join(parts)
        assert _is_ip_address(text) == _slow_ip(text), text
    for text in ["::1", "fe80::1", "1.2.3.4.", "1..2.3"]:
        assert _is_ip_address(text) == _slow_ip(text), text

    def field(width: int, top: int) -> str:
        if rng.random() < 0.05:
            return rng.choice(["", "x", "\u0661\u0662", "9" * (width + 1)])
        return str(rng.randrange(top + 1)).zfill(width if rng.random() < 0.95 else 1)

    taken = 0
    for _ in range(20_000):
        text = (
            f"{field(4, 2100)}-{field(2, 13)}-{field(2, 32)} {field(2, 24)}:{field(2, 60)}:"
            f"{field(2, 61)} {rng.choice('+-')}{field(2, 24)}{field(2, 60)}"
        )
        try:
            expected: datetime | None = datetime.strptime(text, TIMESTAMP_FORMAT)
        except ValueError:
            expected = None
        fast = _parse_fixed_timestamp(text)
        if fast is None:
            # Left to strptime (then ISO 8601), which _parse_timestamp falls back to.
            continue
        taken += 1
        assert expected is not None and fast == expected, text
        assert fast.utcoffset() == expected.utcoffset(), text
        assert _parse_timestamp(text) == expected, text
    assert taken > 5_000  # the fixed-width form the fast path is for, thousands of times
