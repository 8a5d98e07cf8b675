"""The users table: each user's profile, from the compacted topic `{prefix}users`.

The Anomaly Detector joins its alerts with it (a stream-table join with a
GlobalKTable, services/anomaly_detector.py), so that an email goes to the
user whose account is attacked, and an alert names the team to page.

A record's key is the user id (as in the log lines) and its value the
profile's JSON, `{"email": "alice@example.com", "team": "payments"}`; both
fields are optional, a null value deletes the user. The topic is compacted,
so it keeps each user's latest profile for ever.

A profile that is not valid JSON, or whose email is not an address, is never
a reason to lose an alert: the alert goes out without it (to the default
recipients), and the bad profile is counted and logged, rate-limited.

`generate-users` writes the profiles of the log generator's users (normal
users and attacked accounts) once, for the demo and for a fresh deployment.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from email.utils import parseaddr

from services.generate_logs import DEFAULT_ATTACKERS, DEFAULT_USERS, attacker_ids, user_ids
from services.notifications.notification import printable
from services.producing import DeliveryCounter, producer_for
from topicflow.config import KafkaEnv, StreamsConfig
from topicflow.errors import TopicflowError
from topicflow.runtime.runner import EXIT_BAD_SETUP, configure_logging

__all__ = ["TEAMS", "UserProfile", "profile_of", "sample_profiles"]

log = logging.getLogger(__name__)

# A malformed profile is logged at most this often (each alert of its user meets it).
LOG_EVERY_S = 60.0
TEAMS = ("payments", "identity", "search", "mobile")


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What the users table knows of a user: where to email them, which team owns them."""

    email: str | None = None
    team: str | None = None

    def to_json(self) -> str:
        fields = {"email": self.email, "team": self.team}
        return json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True)


class _MalformedProfiles:
    """Counts the profiles `profile_of` could not use, and logs them now and then."""

    def __init__(self) -> None:
        self.count = 0
        self._last_log = -LOG_EVERY_S

    def seen(self, value: str, why: str) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.warning(
                "users: %s in profile %r; the alert goes out without it "
                "(%d malformed profiles met so far)",
                why,
                printable(value, 80),
                self.count,
            )


MALFORMED = _MalformedProfiles()


def profile_of(value: str | None) -> UserProfile | None:
    """The profile in a users-table value, None when there is none or it cannot be used."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError:
        MALFORMED.seen(value, "not JSON")
        return None
    if not isinstance(data, dict):
        MALFORMED.seen(value, "not a JSON object")
        return None
    email, team = data.get("email"), data.get("team")
    if email is not None and (
        # Printable only: the address goes into an email's headers.
        not isinstance(email, str) or not email.isprintable() or "@" not in parseaddr(email)[1]
    ):
        MALFORMED.seen(value, "an email that is not an address")
        email = None
    if team is not None and not isinstance(team, str):
        MALFORMED.seen(value, "a team that is not text")
        team = None
    return UserProfile(email, team)


def sample_profiles(
    users: int = DEFAULT_USERS, attackers: int = DEFAULT_ATTACKERS
) -> dict[str, UserProfile]:
    """The profiles of the log generator's users: `{id}@example.com`, teams in turn."""
    ids = [*user_ids(users), *attacker_ids(attackers)]
    return {
        user: UserProfile(f"{user}@example.com", TEAMS[i % len(TEAMS)])
        for i, user in enumerate(ids)
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="generate-users",
        description="write the log generator's users' profiles to {KAFKA_PREFIX}users, once",
    )
    parser.add_argument("--users", type=int, default=DEFAULT_USERS, help="number of normal users")
    parser.add_argument("--attackers", type=int, default=DEFAULT_ATTACKERS)
    parser.add_argument("--topic", default=None, help="default: {KAFKA_PREFIX}users")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        kafka = KafkaEnv.read(os.environ)
        if kafka.url is None:
            print(
                "generate-users: KAFKA_URL is not set; `topicflow demo` writes the profiles "
                "itself on the embedded broker",
                file=sys.stderr,
            )
            return EXIT_BAD_SETUP
        topic = args.topic or f"{kafka.prefix}users"
        producer = producer_for(StreamsConfig.from_env("generate-users"), topic, "anomaly-detector")
        deliveries = DeliveryCounter()
        profiles = sample_profiles(args.users, args.attackers)
        for user, profile in profiles.items():
            producer.produce(
                topic, profile.to_json().encode(), user.encode(), on_delivery=deliveries
            )
        left = producer.flush(30)
    except TopicflowError as error:
        print(f"generate-users: {error}", file=sys.stderr)
        return EXIT_BAD_SETUP
    if deliveries.failed or left:
        print(
            f"generate-users: {deliveries.failed + left} of {len(profiles)} profiles were not "
            f"delivered to {topic} ({deliveries.first_error or 'flush timed out'})",
            file=sys.stderr,
        )
        return 1
    print(f"generate-users: wrote {len(profiles)} profiles to {topic}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
