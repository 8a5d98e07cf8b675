"""How notifications leave the service: the `Delivery` protocol, and its log-only forms.

Without a webhook or an SMTP server configured, alerts and emails become log
lines (`LogAlerts`, `LogEmails`): the service runs with no set-up.
"""

from __future__ import annotations

import logging
from typing import Protocol

from services.notifications.notification import Pending, printable

__all__ = ["Delivery", "LogAlerts", "LogEmails"]

log = logging.getLogger(__name__)


class Delivery(Protocol):
    """Delivers pending notifications, oldest first, removing each once it is delivered.

    Raises RetriableError when the rest should be tried again later, and
    StreamsException when retrying cannot help. Shared by the processors of
    every task (and stream thread): implementations keep no per-call state.
    """

    def deliver(self, pending: Pending) -> None: ...


class LogAlerts:
    """Alerts as log lines, when no webhook is configured."""

    def deliver(self, pending: Pending) -> None:
        while pending:
            log.warning("ALERT (would page): %s", pending[0].describe())
            pending.popleft()


class LogEmails:
    """Emails as log lines, when no SMTP server is configured."""

    def __init__(self, to: str | None = None) -> None:
        self.to = to

    def deliver(self, pending: Pending) -> None:
        while pending:
            # To the user's own address when the users table has it (see SmtpEmails).
            to = pending[0].email or self.to
            target = f" to {printable(to)}" if to else ""
            log.info("EMAIL (would send%s): %s", target, pending[0].describe())
            pending.popleft()
