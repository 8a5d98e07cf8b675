"""The notification processors and their suppliers, `AlertSink` and `EmailSink`.

A processor forwards each notification's JSON downstream at once and buffers
the notification until `flush()` (at each commit) delivers it; `from_env`
picks the delivery from the environment.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr

from services.notifications.delivery import Delivery, LogAlerts, LogEmails
from services.notifications.notification import Notification, Pending, Severity, printable
from services.notifications.smtp import SmtpEmails, SmtpSettings
from services.notifications.webhook import WebhookAlerts
from services.users import UserProfile
from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import ConfigError, StreamsException
from topicflow.processor.api import Processor, ProcessorContext, Record

__all__ = [
    "EMAIL_THRESHOLD",
    "URGENT_THRESHOLD",
    "AlertSink",
    "EmailSink",
    "NotificationProcessor",
    "UserCount",
]

log = logging.getLogger(__name__)

# The detector's thresholds: more failed logins than this in a window.
URGENT_THRESHOLD = 100
EMAIL_THRESHOLD = 50


@dataclass(frozen=True, slots=True)
class UserCount:
    """A user's failed logins in a window, joined with the user's profile (None: unknown)."""

    count: int
    profile: UserProfile | None


class NotificationProcessor(Processor[Windowed[str], "int | UserCount", Windowed[str], str]):
    """Turns windowed counts into notifications: forwards their JSON, delivers them at commit.

    A count joined with its user's profile (`UserCount`) gives a notification
    with the user's email and team; a bare count, one without.

    Delivery is at least once: a notification stays buffered until delivered;
    `flush()` raises RetriableError (commit skipped, retried with backoff)
    while it cannot be delivered.
    """

    def __init__(self, severity: Severity, threshold: int, delivery: Delivery) -> None:
        self.severity: Severity = severity
        self.threshold = threshold
        self.delivery = delivery
        self.pending: Pending = collections.deque()

    def init(self, context: ProcessorContext[Windowed[str], str]) -> None:
        self.context = context

    def process(self, record: Record[Windowed[str], int | UserCount]) -> None:
        key, value = record.key, record.value
        count, profile = (
            (value.count, value.profile) if isinstance(value, UserCount) else (value, None)
        )
        if not isinstance(key, Windowed) or not isinstance(key.window, TimeWindow):
            raise StreamsException(
                f"{self.severity} notifications need Windowed(user, TimeWindow) keys, "
                f"got {type(key).__name__}"
            )
        if not isinstance(count, int) or isinstance(count, bool):
            raise StreamsException(
                f"{self.severity} notifications need an int count, got {type(count).__name__}"
            )
        notification = Notification(
            user_id=str(key.key),
            window_start=key.window.start,
            window_end=key.window.end,
            count=count,
            severity=self.severity,
            threshold=self.threshold,
            email=profile.email if profile is not None else None,
            team=profile.team if profile is not None else None,
        )
        self.pending.append(notification)
        self.context.forward(record.with_value(notification.to_json()))

    def flush(self) -> None:
        """Deliver the buffered notifications; RetriableError keeps the rest for the next flush."""
        self.delivery.deliver(self.pending)

    def close(self) -> None:
        if self.pending:
            # Their input was not committed: the next owner of the task processes it again.
            log.warning(
                "%d %s notification(s) not delivered at close; their input offsets were not "
                "committed, so that input is processed again",
                len(self.pending),
                self.severity,
            )


class _Sink:
    severity: Severity

    def __init__(self, delivery: Delivery, threshold: int) -> None:
        self.delivery = delivery
        self.threshold = threshold

    def __call__(self) -> NotificationProcessor:
        """A fresh processor, for one task; every task shares the delivery."""
        return NotificationProcessor(self.severity, self.threshold, self.delivery)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.delivery!r}, threshold={self.threshold})"


class AlertSink(_Sink):
    """Supplier of the urgent alerts' processors (`KStream.process(AlertSink.from_env(prefix))`).

    Each alert is delivered at least once: buffered until the webhook accepts
    it, and sent again after a crash; the event's `dedup_key`
    (`{user}-{window_start}-urgent`) lets PagerDuty merge the repeats.
    """

    severity: Severity = "urgent"

    @classmethod
    def from_env(
        cls,
        prefix: str = "",
        environ: Mapping[str, str] | None = None,
        *,
        threshold: int = URGENT_THRESHOLD,
    ) -> AlertSink:
        """Webhook alerts when `ALERT_WEBHOOK_URL` is set (with `ALERT_ROUTING_KEY`), else logs."""
        environ = os.environ if environ is None else environ
        url = environ.get("ALERT_WEBHOOK_URL", "").strip()
        if not url:
            return cls(LogAlerts(), threshold)
        routing_key = environ.get("ALERT_ROUTING_KEY", "").strip() or None
        return cls(WebhookAlerts(url, routing_key, f"{prefix}anomaly-detector"), threshold)


class EmailSink(_Sink):
    """Supplier of the emails' processors (`KStream.process(EmailSink.from_env(prefix))`).

    Each email is delivered at least once: buffered until the SMTP server
    accepts it, and sent again after a crash with the same Message-ID.
    """

    severity: Severity = "email"

    @classmethod
    def from_env(
        cls,
        prefix: str = "",
        environ: Mapping[str, str] | None = None,
        *,
        threshold: int = EMAIL_THRESHOLD,
    ) -> EmailSink:
        """Emails through `SMTP_URL` from `EMAIL_FROM` to `EMAIL_TO` when it is set, else logs."""
        environ = os.environ if environ is None else environ
        url = environ.get("SMTP_URL", "").strip()
        sender = environ.get("EMAIL_FROM", "").strip()
        to = environ.get("EMAIL_TO", "").strip()
        if not url:
            return cls(LogEmails(to or None), threshold)
        settings = SmtpSettings.parse(url)
        missing = [name for name, value in (("EMAIL_FROM", sender), ("EMAIL_TO", to)) if not value]
        if missing:
            raise ConfigError(f"SMTP_URL is set, so {' and '.join(missing)} must be set too")
        if "@" not in parseaddr(sender)[1]:
            raise ConfigError(f"EMAIL_FROM: {printable(sender)!r} is not an email address")
        recipients = [r.strip() for r in to.split(",") if r.strip()]
        for recipient in recipients:
            if "@" not in parseaddr(recipient)[1]:
                raise ConfigError(f"EMAIL_TO: {printable(recipient)!r} is not an email address")
        if not recipients:
            raise ConfigError("EMAIL_TO holds no address")
        return cls(SmtpEmails(settings, sender, recipients, f"{prefix}anomaly-detector"), threshold)
