"""Emails sent over SMTP: `SmtpSettings` (a parsed `SMTP_URL`) and `SmtpEmails`.

Configured by `SMTP_URL`, `EMAIL_FROM` and `EMAIL_TO`. The password is never
shown: the server appears as `smtps://user@host:port`.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from typing import NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

from services.notifications.notification import Notification, Pending, iso, printable
from topicflow.errors import ConfigError, RetriableError, StreamsException

__all__ = ["SMTP_TIMEOUT_S", "SmtpEmails", "SmtpSettings"]

log = logging.getLogger(__name__)

SMTP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SmtpSettings:
    """A parsed `SMTP_URL`. The password is left out of `repr` and of `shown`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    implicit_tls: bool = False
    starttls: bool = False

    @staticmethod
    def parse(url: str, variable: str = "SMTP_URL") -> SmtpSettings:
        """`smtp://[user:password@]host[:port][?starttls=true]` or `smtps://...`.

        Default ports: 25 (smtp), 587 (smtp with STARTTLS), 465 (smtps).
        Special characters of the user name and password are percent-encoded.
        """
        expected = "expected smtp://user:password@host:port or smtps://user:password@host:port"
        split = urlsplit(url.strip())
        if split.scheme not in ("smtp", "smtps"):
            raise ConfigError(f"{variable}: unknown scheme; {expected}")
        try:
            port = split.port
        except ValueError:
            raise ConfigError(
                f"{variable}: the port is not a number between 0 and 65535 (percent-encode "
                "'/', '@', ':' and '?' in the password); " + expected
            ) from None
        if not split.hostname:
            raise ConfigError(f"{variable}: no host name; {expected}")
        starttls = False
        for name, value in parse_qsl(split.query, keep_blank_values=True):
            if name != "starttls":
                raise ConfigError(f"{variable}: unknown option {name!r}; the only one is starttls")
            if value.lower() in ("true", "1", "yes", "on"):
                starttls = True
            elif value.lower() in ("false", "0", "no", "off"):
                starttls = False
            else:
                raise ConfigError(f"{variable}: starttls={value!r}; use starttls=true or false")
        implicit_tls = split.scheme == "smtps"
        if implicit_tls and starttls:
            raise ConfigError(
                f"{variable}: smtps:// is TLS from the start; starttls=true goes with smtp://"
            )
        if port is None:
            port = 465 if implicit_tls else 587 if starttls else 25
        return SmtpSettings(
            host=split.hostname,
            port=port,
            username=unquote(split.username) if split.username else None,
            password=unquote(split.password) if split.password is not None else None,
            implicit_tls=implicit_tls,
            starttls=starttls,
        )

    @property
    def shown(self) -> str:
        """`smtps://user@host:port`: no password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


class SmtpEmails:
    """One email per notification, over one SMTP connection per flush.

    Connection errors, timeouts and SMTP 4xx answers: RetriableError. SMTP 5xx
    answers (bad credentials, refused sender or recipients), or a server
    without the STARTTLS or AUTH the URL asks for: StreamsException.
    """

    def __init__(
        self,
        settings: SmtpSettings,
        sender: str,
        recipients: list[str],
        source: str = "anomaly-detector",
        timeout: float = SMTP_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.recipients = recipients
        self._source = source
        self._timeout = timeout
        self._ssl_context = ssl_context
        self._envelope_from = parseaddr(sender)[1]
        self._envelope_to = [address for _, address in getaddresses(recipients)]
        if settings.password and not (settings.implicit_tls or settings.starttls):
            log.warning(
                "SMTP_URL: the password goes to %s without TLS; "
                "use smtps:// or ?starttls=true unless the server is local",
                settings.shown,
            )

    def __repr__(self) -> str:
        return f"SmtpEmails({self.settings.shown})"

    def message(self, notification: Notification) -> EmailMessage:
        """The email of one notification; its Message-ID is the same for every repeat."""
        user = printable(notification.user_id, 100)
        message = EmailMessage()
        message["From"] = self.sender
        if notification.email:
            # The user's own address, from the users table; the configured
            # recipients (EMAIL_TO) are copied, so they still see every email.
            message["To"] = notification.email
            message["Cc"] = ", ".join(self.recipients)
        else:
            message["To"] = ", ".join(self.recipients)
        message["Subject"] = (
            f"[{self._source}] {user}: {notification.count} failed logins in "
            f"{(notification.window_end - notification.window_start) // 1000} s"
        )
        message["Date"] = formatdate(usegmt=True)
        digest = hashlib.sha256(notification.dedup_key.encode()).hexdigest()[:40]
        domain = self._envelope_from.rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{digest}.{notification.severity}@{domain}>"
        message.set_content(
            f"The user {user} had {notification.count} failed logins between "
            f"{iso(notification.window_start)} and {iso(notification.window_end)} "
            f"(the threshold is {notification.threshold}).\n"
            "\n"
            f"user_id: {user}\n"
            f"failed_logins: {notification.count}\n"
            f"threshold: {notification.threshold}\n"
            f"window: [{notification.window_start}, {notification.window_end}) epoch ms\n"
            "\n"
            f"-- {self._source}\n"
        )
        return message

    def deliver(self, pending: Pending) -> None:
        if not pending:
            return
        settings = self.settings
        try:
            smtp = self._connect()
            try:
                if settings.starttls:
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise StreamsException(
                            f"email server {settings.shown} does not offer STARTTLS, which "
                            "SMTP_URL asks for (starttls=true)"
                        )
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if settings.username:
                    smtp.login(settings.username, settings.password or "")
                while pending:
                    notification = pending[0]
                    envelope_to = self._envelope_to
                    if notification.email:
                        envelope_to = [parseaddr(notification.email)[1], *envelope_to]
                    refused = smtp.send_message(
                        self.message(notification), self._envelope_from, envelope_to
                    )
                    if refused:
                        log.warning(
                            "email server %s refused recipients %s",
                            settings.shown,
                            ", ".join(sorted(refused)),
                        )
                    pending.popleft()
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPNotSupportedError as error:
            raise StreamsException(
                f"email server {settings.shown}: {self._scrub(str(error))}; check SMTP_URL"
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            self._fail(pending, min(codes) if codes else 550, "refused every recipient")
        except smtplib.SMTPConnectError as error:
            self._retry(pending, f"refused the connection ({error.smtp_code})")
        except smtplib.SMTPResponseException as error:
            raw: bytes | str = error.smtp_error or b""
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            self._fail(pending, error.smtp_code, printable(self._scrub(text)))
        except (smtplib.SMTPException, OSError) as error:
            self._retry(pending, f"unreachable: {printable(self._scrub(str(error)))}")

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        if settings.implicit_tls:
            return smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=self._timeout, context=self._context()
            )
        return smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _fail(self, pending: Pending, code: int, text: str) -> NoReturn:
        answer = f"answered {code} {text}".rstrip()
        if 400 <= code < 500:
            self._retry(pending, answer)
        raise StreamsException(
            f"email server {self.settings.shown} {answer}; check SMTP_URL, EMAIL_FROM and EMAIL_TO"
        )

    def _retry(self, pending: Pending, what: str) -> NoReturn:
        n = len(pending)
        raise RetriableError(
            f"email server {self.settings.shown} {what}; "
            f"{n} email{'s' if n > 1 else ''} kept for the next try"
        )

    def _scrub(self, text: str) -> str:
        password = self.settings.password
        if password and len(password) > 2:
            text = text.replace(password, "***")
        return text
