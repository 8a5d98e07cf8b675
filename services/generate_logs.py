"""generate-logs: produce web application log lines to `{prefix}loglines`.

Normal users log in, and fail now and then (`--failed-share`); attackers fail
to log in many times a second (`--attack-rate`, by default 15/s: about 150
failed logins per 10 s window, above the detector's thresholds of 50 and 100).

`log_lines(...)` is the pure, seeded generator behind the command: it yields
`(timestamp_ms, line)` on a simulated clock, so tests and the demo can
compute what the Anomaly Detector must find (`failed_login_counts`). The
command paces it against the real clock and gives each record the line's
timestamp. A progress line goes to stderr every second.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator

from services.logs import (
    FAILED_LOGIN,
    SUCCEEDED_LOGIN,
    format_log_line,
    is_failed_login,
    parse_log_line,
)
from services.producing import DeliveryCounter, flush_on_stop, producer_for, stop_on_sigterm
from topicflow.brokers.base import Producer
from topicflow.config import KafkaEnv, StreamsConfig
from topicflow.errors import ConfigError, StreamsException, TopicflowError
from topicflow.runtime.runner import EXIT_BAD_SETUP, configure_logging

WINDOW_MS = 10_000

DEFAULT_RATE = 100.0
DEFAULT_USERS = 100
DEFAULT_FAILED_SHARE = 0.05
DEFAULT_ATTACKERS = 2
# 15 failed logins/s: 149 to 151 in every 10 s window an attacker covers fully.
DEFAULT_ATTACK_RATE = 15.0

_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "kim",
    "leo",
    "maya",
    "nina",
    "olga",
    "peggy",
    "quinn",
    "rupert",
    "sybil",
    "ted",
    "uma",
    "victor",
    "walter",
    "xena",
    "yusuf",
    "zoe",
)
_ATTACKER_NAMES = ("mallory", "trudy", "oscar", "chuck")
# TEST-NET-1, -2 and -3 (RFC 5737): documentation addresses, for the attackers.
_ATTACK_NETWORKS = ("192.0.2", "198.51.100", "203.0.113")
_WORDS = (
    "amber",
    "basket",
    "candle",
    "delta",
    "ember",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jigsaw",
    "kettle",
    "lantern",
    "meadow",
    "needle",
    "orbit",
    "pepper",
    "quartz",
    "river",
    "saddle",
    "timber",
    "umbrella",
    "velvet",
    "willow",
    "yonder",
    "zephyr",
    "anchor",
    "button",
    "copper",
    "dragon",
    "fossil",
)


def user_ids(users: int) -> list[str]:
    """The ids of the normal users: alice, bob, ... zoe, alice1, bob1, ..."""
    return [_numbered(_NAMES, i) for i in range(users)]


def attacker_ids(attackers: int) -> list[str]:
    """The ids of the attackers: mallory, trudy, oscar, chuck, mallory1, ...; never a normal id."""
    return [_numbered(_ATTACKER_NAMES, i) for i in range(attackers)]


def _numbered(names: tuple[str, ...], i: int) -> str:
    round_, index = divmod(i, len(names))
    return f"{names[index]}{round_ or ''}"


def _home_address(i: int) -> str:
    """A stable private address (10.0.0.0/8) per normal user."""
    n = i + 1
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _message(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(3))


def _slots(rng: random.Random, start_ms: float, per_second: float) -> Iterator[int]:
    """One timestamp per slot of 1/per_second s, at a random point of its slot.

    Strictly within its slot, so a 10 s window holds 10 * per_second lines, plus
    or minus one, whatever the seed: the attackers' counts are guaranteed.
    """
    slot_ms = 1000.0 / per_second
    for k in itertools.count():
        yield int(start_ms + (k + rng.random()) * slot_ms)


def _normal_lines(
    seed: int, users: int, failed_share: float, rate: float, start_ms: int
) -> Iterator[tuple[int, str]]:
    rng = random.Random(f"{seed}-normal")
    ids = user_ids(users)
    for timestamp in _slots(rng, start_ms, rate):
        i = rng.randrange(users)
        action = FAILED_LOGIN if rng.random() < failed_share else SUCCEEDED_LOGIN
        line = format_log_line(ids[i], timestamp, _home_address(i), action, _message(rng))
        yield timestamp, line


def _attacker_lines(
    seed: int, index: int, user_id: str, attack_rate: float, start_ms: int
) -> Iterator[tuple[int, str]]:
    rng = random.Random(f"{seed}-attacker-{index}")
    # Attackers start at different points of the first window.
    first = start_ms + rng.uniform(0, WINDOW_MS)
    for timestamp in _slots(rng, first, attack_rate):
        address = f"{rng.choice(_ATTACK_NETWORKS)}.{rng.randint(1, 254)}"
        yield timestamp, format_log_line(user_id, timestamp, address, FAILED_LOGIN, _message(rng))


def log_lines(
    seed: int = 0,
    users: int = DEFAULT_USERS,
    failed_share: float = DEFAULT_FAILED_SHARE,
    attackers: int = DEFAULT_ATTACKERS,
    attack_rate: float = DEFAULT_ATTACK_RATE,
    rate: float = DEFAULT_RATE,
    start_ms: int = 0,
) -> Iterator[tuple[int, str]]:
    """Endless `(timestamp_ms, line)` pairs in timestamp order, from a simulated clock.

    Normal users (`user_ids(users)`) produce `rate` lines/s from `start_ms`, a
    share `failed_share` of them failed logins. Each attacker
    (`attacker_ids(attackers)`) adds `attack_rate` failed logins/s, from a
    random point of the first 10 s. Each line gets a random time within its
    own slot of 1/rate s, so the number of lines in a window is exact to one.
    The same arguments give the same lines.
    """
    if users < 1:
        raise ConfigError(f"users must be at least 1, got {users}")
    if not rate > 0:
        raise ConfigError(f"rate must be positive, got {rate}")
    if not 0.0 <= failed_share <= 1.0:
        raise ConfigError(f"failed share must be between 0 and 1, got {failed_share}")
    if attackers < 0:
        raise ConfigError(f"attackers must not be negative, got {attackers}")
    if attackers and not attack_rate > 0:
        raise ConfigError(f"attack rate must be positive, got {attack_rate}")
    streams = [_normal_lines(seed, users, failed_share, rate, start_ms)]
    streams.extend(
        _attacker_lines(seed, index, user_id, attack_rate, start_ms)
        for index, user_id in enumerate(attacker_ids(attackers))
    )
    # Ties keep the order of `streams`: merge is stable.
    return heapq.merge(*streams, key=lambda pair: pair[0])


def failed_login_counts(
    lines: Iterable[tuple[int, str]], window_ms: int = WINDOW_MS
) -> Counter[tuple[str, int]]:
    """Failed logins per (user id, start of the epoch-aligned window of the record's timestamp)."""
    counts: Counter[tuple[str, int]] = Counter()
    for timestamp, line in lines:
        parsed = parse_log_line(line)
        if parsed is not None and parsed.is_failed_login:
            counts[parsed.user_id, timestamp - timestamp % window_ms] += 1
    return counts


def produce_log_lines(
    producer: Producer,
    topic: str,
    lines: Iterable[tuple[int, str]],
    start_ms: int,
    count: int,
    progress: bool = True,
) -> int:
    """Send up to `count` lines (0: all), each when its timestamp is due.

    `start_ms` is the timestamp of the call's start: a line goes once the time
    since then reaches its timestamp minus `start_ms`.

    Each record gets its line's timestamp and no key. When sending falls
    behind, lines go as fast as possible and keep their timestamps. Raises
    StreamsException, after sending everything, when the broker did not take
    every line.
    """
    deliveries = DeliveryCounter()
    produce = producer.produce
    poll = producer.poll
    selected = itertools.islice(lines, count) if count else lines
    started = last_report = time.monotonic()
    sent = failed = 0
    for timestamp, line in selected:
        ahead = (timestamp - start_ms) / 1000 - (time.monotonic() - started)
        if ahead > 0:
            poll(0)  # delivery reports, while there is time
            time.sleep(ahead)
        value = line.encode()
        while True:
            try:
                produce(topic, value, timestamp=timestamp, on_delivery=deliveries)
                break
            except BufferError:
                poll(0.05)
        sent += 1
        if is_failed_login(line):
            failed += 1
        if sent % 1000 == 0:
            poll(0)
        if progress:
            now = time.monotonic()
            if now - last_report >= 1.0:
                lost = f", {deliveries.failed:,} NOT DELIVERED" if deliveries.failed else ""
                print(
                    f"generate-logs: {sent:,} lines to {topic} "
                    f"({sent / (now - started):,.0f} lines/s, {failed:,} failed logins{lost})",
                    file=sys.stderr,
                )
                last_report = now
    left = producer.flush(30)
    if deliveries.failed or left:
        undelivered = deliveries.failed + left
        raise StreamsException(
            f"{undelivered:,} of {sent:,} lines were not delivered to {topic}"
            + (f" ({deliveries.first_error})" if deliveries.first_error else " (flush timed out)")
        )
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate-logs",
        description="produce web application log lines to {KAFKA_PREFIX}loglines",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="lines/s of the normal users (the attackers add theirs)",
    )
    parser.add_argument("--count", type=int, default=0, help="lines to send; 0: without end")
    parser.add_argument("--users", type=int, default=DEFAULT_USERS, help="number of normal users")
    parser.add_argument(
        "--failed-share",
        type=float,
        default=DEFAULT_FAILED_SHARE,
        help="share of failed logins among the normal users' lines",
    )
    parser.add_argument(
        "--attackers",
        type=int,
        default=DEFAULT_ATTACKERS,
        help="users who fail to log in many times a second",
    )
    parser.add_argument(
        "--attack-rate",
        type=float,
        default=DEFAULT_ATTACK_RATE,
        help="failed logins/s of each attacker (15: about 150 per 10 s window)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator")
    parser.add_argument("--topic", default=None, help="default: {KAFKA_PREFIX}loglines")
    args = parser.parse_args(argv)
    configure_logging()
    stop_on_sigterm()
    producer: Producer | None = None
    try:

        def lines_from(start_ms: int) -> Iterator[tuple[int, str]]:
            return log_lines(
                args.seed,
                args.users,
                args.failed_share,
                args.attackers,
                args.attack_rate,
                args.rate,
                start_ms,
            )

        lines_from(0)  # checks the arguments before connecting
        kafka = KafkaEnv.read(os.environ)
        if kafka.url is None:
            print(
                "generate-logs: KAFKA_URL is not set, and the embedded broker lives inside one "
                "process: run `topicflow demo` to see the services on it",
                file=sys.stderr,
            )
            return EXIT_BAD_SETUP
        config = StreamsConfig.from_env("generate-logs")
        topic = args.topic or f"{kafka.prefix}loglines"
        producer = producer_for(config, topic, "anomaly-detector")
        # The broker check took time: start the clock now.
        start_ms = int(time.time() * 1000)
        lines = lines_from(start_ms)
        sent = produce_log_lines(producer, topic, lines, start_ms, args.count)
    except TopicflowError as error:
        print(f"generate-logs: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    except KeyboardInterrupt:
        return flush_on_stop(producer, "generate-logs")
    except OSError as error:
        print(f"generate-logs: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    print(f"generate-logs: sent {sent:,} lines to {topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
