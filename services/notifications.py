"""Notifications of the Anomaly Detector: urgent alerts and emails, delivered at least once.

The detector ends with two branches of windowed failed-login counts, one per
severity, each de-duplicated upstream to one record per (user, window):

    alerts.process(AlertSink.from_env(prefix)).to(f"{prefix}anomalies")
    emails.process(EmailSink.from_env(prefix)).to(f"{prefix}anomalies")

`AlertSink` and `EmailSink` are processor suppliers: `KStream.process` calls
them once per task. Their processors get records keyed by
`Windowed(user_id, TimeWindow(start, end))` with the count as value, and

- forward `Notification.to_json()` downstream at once (the audit topic);
- buffer the notification, and deliver the buffer in `flush()`, which the
  stream worker calls at each commit before it commits the input offsets.

When delivery fails for a while (server down, timeout, HTTP 5xx or 429, SMTP
4xx), `flush()` raises `RetriableError`: the worker skips the commit, pauses
input and calls `flush()` again with backoff; the undelivered notifications
stay buffered. A notification is thus delivered at least once: never dropped,
possibly repeated after a crash (its input is then processed again). The
webhook's `dedup_key` and the email's Message-ID let the receiver merge
repeats. This holds as long as nothing upstream records a notification as
sent before `flush()` has delivered it: a de-duplication step whose store is
changelogged does, and after a crash or rebalance its restored state
suppresses the replayed counts of notifications that were still buffered.

A permanent failure (HTTP 4xx, SMTP 5xx, bad credentials) raises
`StreamsException`: retrying a bad request forever would only hide it.

Configuration (environment variables, read by `from_env`):

- `ALERT_WEBHOOK_URL`: a PagerDuty Events API v2 endpoint (or a compatible
  receiver), e.g. https://events.pagerduty.com/v2/enqueue; unset: alerts are logged.
- `ALERT_ROUTING_KEY`: the integration's routing key, sent in the body (never logged).
- `SMTP_URL`: `smtp://user:password@host:port`, `smtps://...` for implicit TLS,
  `smtp://...?starttls=true` for STARTTLS; unset: emails are logged.
- `EMAIL_FROM`, `EMAIL_TO`: sender and recipients (comma-separated); required
  with `SMTP_URL`.

Messages and logs never show a password, a routing key or a webhook's path
and query (which often hold a token): servers are shown as `scheme://host:port`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import http.client
import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, parseaddr
from typing import Any, Literal, NoReturn, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from topicflow.dsl.windows import TimeWindow, Windowed
from topicflow.errors import ConfigError, RetriableError, SerializationError, StreamsException
from topicflow.processor.api import Processor, ProcessorContext, Record

log = logging.getLogger(__name__)

# The detector's thresholds: more failed logins than this in a window.
URGENT_THRESHOLD = 100
EMAIL_THRESHOLD = 50

WEBHOOK_TIMEOUT_S = 5.0
SMTP_TIMEOUT_S = 10.0

Severity = Literal["urgent", "email"]
_SEVERITIES = ("urgent", "email")
Pending = collections.deque["Notification"]


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def _printable(text: str, limit: int = 200) -> str:
    """`text` safe for a log line, a header or a summary: no control characters, bounded."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification: `user_id` had `count` failed logins in [window_start, window_end).

    Window bounds are epoch milliseconds; `threshold` is the one `count` exceeded.
    """

    user_id: str
    window_start: int
    window_end: int
    count: int
    severity: Severity
    threshold: int

    def to_json(self) -> str:
        """Compact JSON with sorted keys."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    def from_json(text: str | bytes) -> Notification:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise SerializationError(f"notification is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise SerializationError("notification JSON is not an object")
        expected = {
            "user_id": str,
            "window_start": int,
            "window_end": int,
            "count": int,
            "severity": str,
            "threshold": int,
        }
        if set(data) != set(expected):
            raise SerializationError(
                f"notification JSON has fields {sorted(data)}, expected {sorted(expected)}"
            )
        for name, kind in expected.items():
            value = data[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise SerializationError(f"notification field {name!r} is not {kind.__name__}")
        if data["severity"] not in _SEVERITIES:
            raise SerializationError(
                f"notification severity {data['severity']!r} is not 'urgent' or 'email'"
            )
        return Notification(**data)

    @property
    def dedup_key(self) -> str:
        """`{user}-{window_start}-{severity}`: the same for every repeat of this notification."""
        key = f"{self.user_id}-{self.window_start}-{self.severity}"
        if len(key) <= 255 and key.isprintable():  # PagerDuty's limit
            return key
        digest = hashlib.sha256(self.user_id.encode()).hexdigest()[:32]
        return f"{digest}-{self.window_start}-{self.severity}"

    def describe(self) -> str:
        """`user alice had 120 failed logins in [2026-11-25T10:00:00.000+00:00, ...)`."""
        return (
            f"user {_printable(self.user_id)} had {self.count} failed logins in "
            f"[{_iso(self.window_start)}, {_iso(self.window_end)})"
        )


# -- delivery --------------------------------------------------------------------------------------


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
        target = f" to {_printable(self.to)}" if self.to else ""
        while pending:
            log.info("EMAIL (would send%s): %s", target, pending[0].describe())
            pending.popleft()


def _shown_url(scheme: str, host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would become a GET without body: report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookAlerts:
    """Alerts POSTed as PagerDuty Events API v2 `trigger` events, one request per alert.

    2xx: delivered. 5xx, 429, timeouts and connection errors: RetriableError.
    Any other status: StreamsException (a bad URL, routing key or body will
    not get better by retrying).
    """

    def __init__(
        self,
        url: str,
        routing_key: str | None = None,
        source: str = "anomaly-detector",
        timeout: float = WEBHOOK_TIMEOUT_S,
        variable: str = "ALERT_WEBHOOK_URL",
    ) -> None:
        split = urlsplit(url.strip())
        if split.scheme not in ("http", "https"):
            raise ConfigError(f"{variable}: use an http:// or https:// URL")
        try:
            port = split.port
        except ValueError:
            raise ConfigError(f"{variable}: the port is not a number between 0 and 65535") from None
        if not split.hostname:
            raise ConfigError(f"{variable}: no host name; expected e.g. https://host/path")
        self.shown = _shown_url(split.scheme, split.hostname, port)
        password = split.password
        secrets = (routing_key, password, unquote(password or ""), split.path, split.query)
        self._secrets = [s for s in secrets if s and len(s) > 3]
        self._authorization: str | None = None
        if split.username is not None or split.password is not None:
            credentials = f"{unquote(split.username or '')}:{unquote(split.password or '')}"
            self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
            netloc = split.hostname if ":" not in split.hostname else f"[{split.hostname}]"
            netloc += f":{port}" if port is not None else ""
            split = split._replace(netloc=netloc)
        self._url = split.geturl()
        self._routing_key = routing_key or None
        self._source = source
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"WebhookAlerts({self.shown})"

    def event(self, notification: Notification) -> dict[str, Any]:
        """The PagerDuty Events API v2 body of one alert: the same for every repeat."""
        user = _printable(notification.user_id)
        body: dict[str, Any] = {
            "event_action": "trigger",
            "dedup_key": notification.dedup_key,
            "payload": {
                "summary": _printable(
                    f"{user}: {notification.count} failed logins in "
                    f"{(notification.window_end - notification.window_start) // 1000} s "
                    f"(more than {notification.threshold})",
                    1024,
                ),
                "source": self._source,
                "severity": "critical",
                "timestamp": _iso(notification.window_start),
                "component": "login",
                "class": "failed logins",
                "custom_details": {
                    "user_id": notification.user_id,
                    "failed_logins": notification.count,
                    "threshold": notification.threshold,
                    "window_start": _iso(notification.window_start),
                    "window_end": _iso(notification.window_end),
                    "window_start_ms": notification.window_start,
                    "window_end_ms": notification.window_end,
                },
            },
            "client": "topicflow anomaly-detector",
        }
        if self._routing_key is not None:
            body["routing_key"] = self._routing_key
        return body

    def deliver(self, pending: Pending) -> None:
        if not pending:
            return
        opener = urllib.request.build_opener(_NoRedirect)
        while pending:
            self._post(opener, pending[0], len(pending))
            pending.popleft()

    def _post(
        self, opener: urllib.request.OpenerDirector, notification: Notification, pending: int
    ) -> None:
        data = json.dumps(self.event(notification), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "topicflow-anomaly-detector"}
        if self._authorization is not None:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self._url, data=data, headers=headers, method="POST")
        kept = f"{pending} alert{'s' if pending > 1 else ''} kept for the next try"
        try:
            with opener.open(request, timeout=self._timeout) as response:
                response.read()
                status = int(response.status)
                reason = str(response.reason)
                detail = ""
        except urllib.error.HTTPError as error:
            status, reason = error.code, str(error.reason)
            try:
                detail = self._detail(error.read(4096))
            except OSError:
                detail = ""
            finally:
                error.close()
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
            cause = error.reason if isinstance(error, urllib.error.URLError) else error
            raise RetriableError(
                f"alert webhook {self.shown} unreachable: {self._scrub(str(cause))}; {kept}"
            ) from None
        if 200 <= status < 300:
            return
        answer = f"alert webhook {self.shown} answered HTTP {status} {self._scrub(reason)}{detail}"
        if status >= 500 or status == 429:
            raise RetriableError(f"{answer}; {kept}")
        raise StreamsException(f"{answer}; check ALERT_WEBHOOK_URL and ALERT_ROUTING_KEY")

    def _detail(self, body: bytes) -> str:
        """PagerDuty's `message` and first error, when the body is such JSON."""
        try:
            data = json.loads(body)
        except ValueError:
            return ""
        if not isinstance(data, dict):
            return ""
        parts = [data.get("message"), data.get("error")]
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            parts.append(errors[0])
        text = ": ".join(str(p) for p in parts if isinstance(p, str) and p)
        return f" ({_printable(self._scrub(text))})" if text else ""

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


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
        user = _printable(notification.user_id, 100)
        message = EmailMessage()
        message["From"] = self.sender
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
            f"{_iso(notification.window_start)} and {_iso(notification.window_end)} "
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
                    refused = smtp.send_message(
                        self.message(pending[0]), self._envelope_from, self._envelope_to
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
            self._fail(pending, error.smtp_code, _printable(self._scrub(text)))
        except (smtplib.SMTPException, OSError) as error:
            self._retry(pending, f"unreachable: {_printable(self._scrub(str(error)))}")

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


# -- the processors and their suppliers ----------------------------------------------------------


class NotificationProcessor(Processor[Windowed[str], int, Windowed[str], str]):
    """Turns windowed counts into notifications: forwards their JSON, delivers them at commit.

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

    def process(self, record: Record[Windowed[str], int]) -> None:
        key, count = record.key, record.value
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
            raise ConfigError(f"EMAIL_FROM: {_printable(sender)!r} is not an email address")
        recipients = [r.strip() for r in to.split(",") if r.strip()]
        for recipient in recipients:
            if "@" not in parseaddr(recipient)[1]:
                raise ConfigError(f"EMAIL_TO: {_printable(recipient)!r} is not an email address")
        if not recipients:
            raise ConfigError("EMAIL_TO holds no address")
        return cls(SmtpEmails(settings, sender, recipients, f"{prefix}anomaly-detector"), threshold)
