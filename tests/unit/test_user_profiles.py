"""The users table's profiles (services/users.py) and what they change in notifications:
the email goes to the user, the alert names the team. Against real local SMTP and
HTTP servers."""

from __future__ import annotations

import collections
import logging

import pytest

from services.notifications.delivery import LogEmails
from services.notifications.notification import Notification
from services.notifications.processors import UserCount
from services.notifications.smtp import SmtpEmails, SmtpSettings
from services.notifications.webhook import WebhookAlerts
from services.users import TEAMS, UserProfile, profile_of, sample_profiles
from tests.local_servers import HOST, LocalHttpServer, LocalSmtpServer
from topicflow.errors import SerializationError

T0 = 1_795_600_800_000


def notification(**profile: str) -> Notification:
    return Notification("alice", T0, T0 + 10_000, 51, "email", 50, **profile)


# -- profiles ----------------------------------------------------------------------------


def test_a_profile_is_read_from_its_json() -> None:
    assert profile_of('{"email": "alice@example.com", "team": "payments"}') == UserProfile(
        "alice@example.com", "payments"
    )
    assert profile_of('{"team": "payments"}') == UserProfile(None, "payments")
    assert profile_of("{}") == UserProfile()
    assert profile_of(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ('"alice@example.com"', None),
        ('{"email": "no address", "team": "payments"}', UserProfile(None, "payments")),
        ('{"email": 7, "team": "payments"}', UserProfile(None, "payments")),
        # A line break would let the profile write headers of its own into the email.
        ('{"email": "a@example.com\\r\\nBcc: x@evil.example"}', UserProfile()),
        ('{"email": "a@example.com", "team": ["x"]}', UserProfile("a@example.com", None)),
    ],
)
def test_what_cannot_be_used_of_a_profile_is_left_out_counted_and_logged(
    value: str, expected: UserProfile | None, caplog: pytest.LogCaptureFixture
) -> None:
    from services import users

    users.MALFORMED._last_log = -users.LOG_EVERY_S  # the rate limit starts afresh
    before = users.MALFORMED.count
    with caplog.at_level(logging.WARNING, logger="services.users"):
        assert profile_of(value) == expected
    assert users.MALFORMED.count == before + 1
    assert "the alert goes out without it" in caplog.text


def test_profile_json_round_trips_and_leaves_out_what_is_unknown() -> None:
    profile = UserProfile("alice@example.com", "payments")
    assert profile.to_json() == '{"email": "alice@example.com", "team": "payments"}'
    assert profile_of(profile.to_json()) == profile
    assert UserProfile(team="search").to_json() == '{"team": "search"}'


def test_sample_profiles_cover_the_log_generators_users_and_attacked_accounts() -> None:
    profiles = sample_profiles(users=5, attackers=2)
    assert list(profiles) == ["alice", "bob", "carol", "dave", "erin", "mallory", "trudy"]
    assert profiles["mallory"] == UserProfile("mallory@example.com", TEAMS[5 % len(TEAMS)])


# -- notifications with a profile --------------------------------------------------------------


def test_notification_json_carries_the_profile_only_when_known() -> None:
    plain = notification()
    assert '"email":' not in plain.to_json() and '"team":' not in plain.to_json()
    enriched = notification(email="alice@example.com", team="payments")
    assert enriched.to_json() == (
        '{"count":51,"email":"alice@example.com","severity":"email","team":"payments",'
        f'"threshold":50,"user_id":"alice","window_end":{T0 + 10_000},"window_start":{T0}}}'
    )
    assert Notification.from_json(enriched.to_json()) == enriched
    assert Notification.from_json(plain.to_json()) == plain
    with pytest.raises(SerializationError, match="'team' is not str"):
        Notification.from_json(enriched.to_json().replace('"payments"', "3"))


def test_a_count_joined_with_a_profile_is_a_notification_with_it() -> None:
    joined = UserCount(51, UserProfile("alice@example.com", "payments"))
    assert (joined.count, joined.profile) == (51, UserProfile("alice@example.com", "payments"))
    assert "(team payments)" in notification(team="payments").describe()
    assert "(team" not in notification().describe()


def test_an_email_goes_to_the_user_with_the_configured_recipients_copied() -> None:
    with LocalSmtpServer() as server:
        emails = SmtpEmails(
            SmtpSettings.parse(f"smtp://{HOST}:{server.port}"),
            "Anomaly Detector <detector@example.com>",
            ["security@example.com"],
        )
        emails.deliver(collections.deque([notification(email="alice@example.com"), notification()]))
    to_user, to_default = server.messages
    assert to_user.rcpt_tos == ["alice@example.com", "security@example.com"]
    assert to_user.message["To"] == "alice@example.com"
    assert to_user.message["Cc"] == "security@example.com"
    assert to_default.rcpt_tos == ["security@example.com"]
    assert to_default.message["To"] == "security@example.com"
    assert to_default.message["Cc"] is None


def test_a_logged_email_names_the_users_address(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        LogEmails("security@example.com").deliver(
            collections.deque([notification(email="alice@example.com"), notification()])
        )
    assert "would send to alice@example.com" in caplog.messages[0]
    assert "would send to security@example.com" in caplog.messages[1]


def test_an_alert_names_the_team_and_the_users_address() -> None:
    with LocalHttpServer() as server:
        alerts = WebhookAlerts(server.url(), "R0UT1NG", "anomaly-detector")
        alerts.deliver(
            collections.deque(
                [
                    notification(email="alice@example.com", team="payments"),
                    notification(),
                ]
            )
        )
    enriched, plain = (r.json()["payload"]["custom_details"] for r in server.requests)
    assert enriched["team"] == "payments" and enriched["email"] == "alice@example.com"
    assert "team" not in plain and "email" not in plain
